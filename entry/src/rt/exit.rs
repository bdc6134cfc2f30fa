//! Leaving the guest.
//!
//! In order: a write of the exit code to QEMU's `isa-debug-exit` device at
//! port 0xF4 (QEMU then exits with status `(code << 1) | 1`, so a guest can
//! never produce status 0, which stays "QEMU itself ended normally"); under
//! Xen, `SCHEDOP_shutdown` (poweroff on success, crash otherwise); and
//! finally `cli; hlt` forever.

/// The `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
pub use crate::machine::EXIT_PORT as DEBUG_EXIT_PORT;

/// What a guest reports. The values are the contract with the host side's
/// tests: see [`ExitCode::qemu_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything the guest checked was fine. QEMU status 1.
    Success = 0,
    /// The guest found something wrong and said so on the console.
    /// QEMU status 3.
    Failure = 1,
    /// A Rust panic. QEMU status 5.
    Panic = 2,
    /// A CPU exception. QEMU status 7.
    Fault = 3,
}

impl ExitCode {
    /// QEMU's exit status after the guest writes this code to
    /// `isa-debug-exit`.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// The code for a QEMU exit status, if it is one of ours.
    pub const fn from_qemu_status(status: i32) -> Option<Self> {
        Some(match status {
            1 => Self::Success,
            3 => Self::Failure,
            5 => Self::Panic,
            7 => Self::Fault,
            _ => return None,
        })
    }
}

/// Ends the guest with `code` (see the module docs). Never returns.
#[cfg(target_os = "none")]
pub fn exit(code: ExitCode) -> ! {
    use super::xen::{ShutdownReason, detected};
    use x86_64::instructions::port::Port;

    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xF4 is QEMU's isa-debug-exit when present; on a machine
    // without it the write goes nowhere.
    unsafe { port.write(code as u32) };
    if let Some(xen) = detected() {
        let reason = match code {
            ExitCode::Success => ShutdownReason::Poweroff,
            _ => ShutdownReason::Crash,
        };
        let _refused = xen.shutdown(reason);
    }
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_status_is_code_shifted_with_bit_0_set() {
        assert_eq!(ExitCode::Success.qemu_status(), 1);
        assert_eq!(ExitCode::Failure.qemu_status(), 3);
        assert_eq!(ExitCode::Panic.qemu_status(), 5);
        assert_eq!(ExitCode::Fault.qemu_status(), 7);
        for c in [
            ExitCode::Success,
            ExitCode::Failure,
            ExitCode::Panic,
            ExitCode::Fault,
        ] {
            assert_eq!(ExitCode::from_qemu_status(c.qemu_status()), Some(c));
        }
        assert_eq!(ExitCode::from_qemu_status(0), None);
    }
}
