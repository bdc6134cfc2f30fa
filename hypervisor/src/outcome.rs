//! How a VM run ended, and the process exit status each ending maps to.
//!
//! The statuses are the `pvh` binary's contract (docs/hypervisor.md):
//! 0..=63 are the guest's own verdict, 64 and up are the VMM's.

use std::fmt;
use std::time::Duration;

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::devices::DeviceError;

/// Process exit statuses of `pvh`.
pub mod status {
    /// The guest reset (i8042 0xfe), shut down, powered off through ACPI,
    /// or wrote 0 to the exit port (or, under `pvh launch`, was ended with
    /// the control domain).
    pub const SUCCESS: u8 = 0;
    /// Largest exit-port value passed through unchanged as the status.
    pub const GUEST_MAX: u8 = 63;
    /// Command-line usage error.
    pub const USAGE: u8 = 64;
    /// The guest wrote a value above [`GUEST_MAX`] to the exit port.
    pub const GUEST_CODE_OUT_OF_RANGE: u8 = 65;
    /// An input file (kernel, initrd, module) could not be read or loaded.
    pub const BAD_INPUT: u8 = 66;
    /// `/dev/kvm` is missing or unusable.
    pub const NO_KVM: u8 = 69;
    /// The VMM itself failed (a KVM ioctl, a device's host side).
    pub const VMM_ERROR: u8 = 70;
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    pub const TRIPLE_FAULT: u8 = 71;
    /// KVM could not run the guest (internal error, emulation failure,
    /// entry failure).
    pub const KVM_INTERNAL: u8 = 72;
    /// `--timeout` expired.
    pub const TIMEOUT: u8 = 73;
    /// The guest halted with nothing to wake it (KVM_EXIT_HLT).
    pub const HALTED: u8 = 74;
    /// A VM exit this VMM does not handle, or a guest crash event.
    pub const UNHANDLED_EXIT: u8 = 75;
    /// The built-in probe guest was requested but is not built in.
    pub const NO_PROBE: u8 = 76;
    /// An output could not be created or written: standard output (a full
    /// disk, an I/O error; a closed pipe instead ends `pvh` by `SIGPIPE`),
    /// the `--serial` file, the guest's console, `wrap -o`.
    pub const OUTPUT: u8 = 77;
    /// The user quit from the interactive console (Ctrl-A x).
    pub const QUIT: u8 = 78;

    /// The status for an input that could not be opened: [`BAD_INPUT`]
    /// when the input is at fault, [`VMM_ERROR`] when the host is (no
    /// room in `$TMPDIR` to spool a piped input). One decision for
    /// `boot`, `launch` and `wrap`.
    pub fn for_input(e: &pvh_loader::InputError) -> u8 {
        if e.is_input_fault() {
            BAD_INPUT
        } else {
            VMM_ERROR
        }
    }
}

/// A snapshot of a vCPU's registers, printed when a run ends badly.
#[derive(Clone, Copy)]
pub struct RegsDump {
    /// General-purpose registers.
    pub regs: kvm_regs,
    /// Segment and control registers.
    pub sregs: kvm_sregs,
}

impl fmt::Debug for RegsDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn seg(f: &mut fmt::Formatter<'_>, name: &str, s: &kvm_segment) -> fmt::Result {
    write!(
        f,
        "{name}={:04x} base={:#x} limit={:#x} type={:#x} db={} l={}",
        s.selector, s.base, s.limit, s.type_, s.db, s.l
    )
}

impl fmt::Display for RegsDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.regs;
        let s = &self.sregs;
        writeln!(
            f,
            "rip={:#018x} rsp={:#018x} rflags={:#010x}",
            r.rip, r.rsp, r.rflags
        )?;
        writeln!(
            f,
            "rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "rsi={:#018x} rdi={:#018x} rbp={:#018x}",
            r.rsi, r.rdi, r.rbp
        )?;
        writeln!(
            f,
            "r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}",
            r.r8, r.r9, r.r10, r.r11
        )?;
        writeln!(
            f,
            "r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}",
            r.r12, r.r13, r.r14, r.r15
        )?;
        writeln!(
            f,
            "cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x}",
            s.cr0, s.cr2, s.cr3, s.cr4, s.efer
        )?;
        seg(f, "cs", &s.cs)?;
        f.write_str("\n")?;
        seg(f, "ss", &s.ss)?;
        f.write_str("\n")?;
        write!(
            f,
            "gdt={:#x}/{:#x} idt={:#x}/{:#x}",
            s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit
        )
    }
}

/// Why a VM run ended.
#[derive(Debug)]
pub enum VmEnd {
    /// The guest wrote this value to the exit port.
    ExitPort(u32),
    /// The guest reset the machine (i8042 command 0xfe, or a KVM reset event).
    Reset,
    /// The guest shut down (KVM system event).
    Shutdown,
    /// The guest powered off through the ACPI sleep control register (S5).
    PowerOff,
    /// The guest halted and KVM returned to us (only without an in-kernel
    /// local APIC, or with interrupts that can never arrive).
    Halted(Option<RegsDump>),
    /// Triple fault: KVM_EXIT_SHUTDOWN.
    TripleFault(Option<RegsDump>),
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused the guest state.
    FailEntry {
        /// Hardware reason (VMX exit qualification / SVM code).
        reason: u64,
        /// Host CPU.
        cpu: u32,
        /// Registers at the time.
        regs: Option<RegsDump>,
    },
    /// KVM_EXIT_INTERNAL_ERROR (e.g. emulation failure).
    InternalError {
        /// `KVM_INTERNAL_ERROR_*` sub-error.
        suberror: u32,
        /// Extra data words KVM gave.
        data: Vec<u64>,
        /// Registers at the time.
        regs: Option<RegsDump>,
    },
    /// A VM exit this VMM does not handle (including a guest crash event).
    Unhandled {
        /// The exit as printed by kvm-ioctls.
        exit: String,
        /// Registers at the time.
        regs: Option<RegsDump>,
    },
    /// The `--timeout` expired.
    Timeout {
        /// The limit that expired.
        after: Duration,
        /// vCPU 0's registers when it was stopped.
        regs: Option<RegsDump>,
    },
    /// A device's host side failed (e.g. console output).
    Device(DeviceError),
    /// A KVM call failed while running.
    Kvm {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// The vCPU was asked to stop (another vCPU ended the VM).
    Stopped(Option<RegsDump>),
    /// The VMM ended the VM from outside while it ran (`pvh launch` when
    /// the control domain ended): not a failure of the guest.
    Destroyed {
        /// vCPU 0's registers when it was stopped.
        regs: Option<RegsDump>,
    },
    /// The user quit from the interactive console (Ctrl-A x).
    Quit,
}

impl VmEnd {
    /// The `pvh` process exit status for this ending.
    pub fn status(&self) -> u8 {
        use status::*;
        match self {
            Self::ExitPort(v) => match u8::try_from(*v) {
                Ok(v) if v <= GUEST_MAX => v,
                _ => GUEST_CODE_OUT_OF_RANGE,
            },
            Self::Reset | Self::Shutdown | Self::PowerOff | Self::Destroyed { .. } => SUCCESS,
            Self::Halted(_) => HALTED,
            Self::TripleFault(_) => TRIPLE_FAULT,
            Self::FailEntry { .. } | Self::InternalError { .. } => KVM_INTERNAL,
            Self::Unhandled { .. } => UNHANDLED_EXIT,
            Self::Timeout { .. } => TIMEOUT,
            Self::Device(DeviceError::Output(_)) => OUTPUT,
            Self::Device(_) | Self::Kvm { .. } | Self::Stopped(_) => VMM_ERROR,
            Self::Quit => QUIT,
        }
    }

    /// The registers captured at the end, if this ending carries them.
    pub fn regs(&self) -> Option<&RegsDump> {
        match self {
            Self::Halted(r) | Self::TripleFault(r) | Self::Stopped(r) => r.as_ref(),
            Self::FailEntry { regs, .. }
            | Self::InternalError { regs, .. }
            | Self::Unhandled { regs, .. }
            | Self::Timeout { regs, .. }
            | Self::Destroyed { regs } => regs.as_ref(),
            _ => None,
        }
    }

    /// Whether the run ended because the reader of the guest's console went
    /// away (a closed pipe): `pvh` then ends quietly (see
    /// [`crate::output`]).
    pub fn output_closed(&self) -> bool {
        matches!(self, Self::Device(DeviceError::Output(e)) if crate::output::is_closed(e))
    }

    /// Whether this ending is the guest's normal way out.
    pub fn is_clean(&self) -> bool {
        self.status() == status::SUCCESS
    }
}

impl fmt::Display for VmEnd {
    /// The one-line reason printed on stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExitPort(v) if self.status() == status::GUEST_CODE_OUT_OF_RANGE => write!(
                f,
                "guest wrote {v:#x} to the exit port (above {}; status {})",
                status::GUEST_MAX,
                status::GUEST_CODE_OUT_OF_RANGE
            ),
            Self::ExitPort(v) => write!(f, "guest exited through the exit port with code {v}"),
            Self::Reset => f.write_str("guest reset"),
            Self::Shutdown => f.write_str("guest shut down"),
            Self::PowerOff => f.write_str("guest powered off"),
            Self::Halted(_) => f.write_str("guest halted with nothing to wake it"),
            Self::TripleFault(_) => f.write_str("guest triple fault (KVM_EXIT_SHUTDOWN)"),
            Self::FailEntry { reason, cpu, .. } => write!(
                f,
                "KVM entry failure: hardware reason {reason:#x} on host cpu {cpu}"
            ),
            Self::InternalError { suberror, data, .. } => {
                let what = match *suberror {
                    kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => "emulation failure",
                    kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => "exception while delivering one",
                    kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => "event delivery failure",
                    _ => "internal error",
                };
                write!(f, "KVM internal error {suberror} ({what}), data {data:x?}")
            }
            Self::Unhandled { exit, .. } => write!(f, "unhandled VM exit: {exit}"),
            Self::Timeout { after, .. } => {
                write!(
                    f,
                    "timeout: guest still running after {}s",
                    after.as_secs_f64()
                )
            }
            Self::Device(e @ DeviceError::Output(_)) => write!(f, "{e}"),
            Self::Device(e) => write!(f, "device error: {e}"),
            Self::Kvm { op, source } => write!(f, "KVM {op} failed: {source}"),
            Self::Stopped(_) => f.write_str("vCPU stopped by the VMM"),
            Self::Destroyed { .. } => f.write_str("destroyed by the VMM while running"),
            Self::Quit => f.write_str("quit from the console (Ctrl-A x)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_port_values_map_to_statuses() {
        assert_eq!(VmEnd::ExitPort(0).status(), 0);
        assert_eq!(VmEnd::ExitPort(42).status(), 42);
        assert_eq!(VmEnd::ExitPort(63).status(), 63);
        assert_eq!(VmEnd::ExitPort(64).status(), 65);
        assert_eq!(VmEnd::ExitPort(0x1_0001).status(), 65);
    }

    #[test]
    fn vmm_statuses_are_distinct_and_above_guest_range() {
        assert_eq!(VmEnd::PowerOff.status(), 0);
        assert_eq!(VmEnd::PowerOff.to_string(), "guest powered off");
        let ends = [
            VmEnd::Reset.status(),
            VmEnd::Halted(None).status(),
            VmEnd::TripleFault(None).status(),
            VmEnd::InternalError {
                suberror: 1,
                data: vec![],
                regs: None,
            }
            .status(),
            VmEnd::Unhandled {
                exit: String::new(),
                regs: None,
            }
            .status(),
            VmEnd::Timeout {
                after: Duration::from_secs(1),
                regs: None,
            }
            .status(),
        ];
        assert_eq!(ends, [0, 74, 71, 72, 75, 73]);
    }

    #[test]
    fn output_failures_have_their_own_status() {
        let full = VmEnd::Device(DeviceError::Output(std::io::Error::from_raw_os_error(
            libc::ENOSPC,
        )));
        assert_eq!(full.status(), status::OUTPUT);
        assert!(!full.output_closed());
        let closed = VmEnd::Device(DeviceError::Output(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )));
        assert!(closed.output_closed());
        let irq = VmEnd::Device(DeviceError::Interrupt(std::io::Error::from_raw_os_error(
            libc::EBADF,
        )));
        assert_eq!(irq.status(), status::VMM_ERROR);
        assert_eq!(VmEnd::Quit.status(), status::QUIT);
        let statuses = [
            status::USAGE,
            status::GUEST_CODE_OUT_OF_RANGE,
            status::BAD_INPUT,
            status::NO_KVM,
            status::VMM_ERROR,
            status::TRIPLE_FAULT,
            status::KVM_INTERNAL,
            status::TIMEOUT,
            status::HALTED,
            status::UNHANDLED_EXIT,
            status::NO_PROBE,
            status::OUTPUT,
            status::QUIT,
        ];
        let distinct: std::collections::BTreeSet<u8> = statuses.into_iter().collect();
        assert_eq!(distinct.len(), statuses.len());
        assert!(statuses.iter().all(|&s| s > status::GUEST_MAX && s < 128));
    }
}
