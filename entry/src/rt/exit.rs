//! Leaving the guest.
//!
//! In order: a write of the exit code to QEMU's `isa-debug-exit` device at
//! port 0xF4 (QEMU then exits with status `(code << 1) | 1`, so a guest can
//! never produce status 0, which stays "QEMU itself ended normally"; `pvh`
//! exits with the code itself); under Xen, `SCHEDOP_shutdown` (poweroff on
//! success, crash otherwise); then, for hypervisors with no exit port
//! (Firecracker, Cloud Hypervisor), ACPI S5 as the tables describe it
//! ([`crate::acpi::s5_poweroff`]: Cloud Hypervisor's sleep control
//! register) and a reset through the keyboard controller (0xFE to port
//! 0x64: Firecracker ends the VM on it); the code itself is lost there,
//! so guests print their verdict first. Finally `cli; hlt` forever.

/// The `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
pub use crate::machine::EXIT_PORT as DEBUG_EXIT_PORT;
/// The i8042 keyboard controller's command port (the machine contract's
/// data port + 4).
pub const I8042_COMMAND_PORT: u16 = crate::machine::I8042_PORT + 4;
/// The i8042 command that pulses the CPU reset line.
pub const I8042_RESET: u8 = 0xfe;

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
    power_off();
    let mut i8042: Port<u8> = Port::new(I8042_COMMAND_PORT);
    // SAFETY: a reset request to the keyboard controller; where there is
    // none the write goes nowhere.
    unsafe { i8042.write(I8042_RESET) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// ACPI S5 through the register the FADT names, if the tables the
/// start_info (EBX at entry) leads to describe one.
#[cfg(target_os = "none")]
fn power_off() {
    use crate::acpi::{PowerOff, rsdp, s5_poweroff};
    use crate::memory::read_obj;
    use crate::start_info::{START_INFO_MAGIC, StartInfo};
    use x86_64::instructions::port::Port;

    // SAFETY: read only.
    let mem = unsafe { super::identity_memory() };
    let start_info = u64::from(super::entry_state().ebx);
    let passed = read_obj::<StartInfo, _>(&mem, start_info)
        .ok()
        .filter(|h| h.magic == START_INFO_MAGIC)
        .map(|h| h.rsdp_paddr)
        .filter(|&a| a != 0);
    let Some((rsdp_addr, _)) = rsdp::locate(&mem, passed) else {
        return;
    };
    match s5_poweroff(&mem, rsdp_addr) {
        // SAFETY: the port the firmware tables name for exactly this.
        Some(PowerOff::SleepControl { port, value }) => unsafe {
            Port::<u8>::new(port).write(value)
        },
        // SAFETY: as above.
        Some(PowerOff::Pm1Control { port, value }) => unsafe {
            Port::<u16>::new(port).write(value)
        },
        None => {}
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
