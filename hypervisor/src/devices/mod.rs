//! Port-I/O devices and the bus that routes guest `in`/`out` to them.
//!
//! Only the devices a Linux or probe guest needs are modelled; everything else
//! reads as all ones (what an empty ISA bus returns) and is counted so that a
//! guest polling a port nobody answers shows up in `--verbose` output instead
//! of silently spinning.

pub mod bus;
pub mod console;
pub mod debugcon;
pub mod exit_port;
pub mod i8042;
pub mod input;
pub mod rtc;
pub mod serial;
pub mod sleep;

pub use bus::{IoBus, PortCounts, PortRange};
pub use console::ConsoleOut;

/// The ACPI platform these devices make: each device supplies its own DSDT
/// node (COM1, the RTC) and the RTC its century register, for
/// `pvh_acpi` to build the tables from.
pub fn acpi_platform() -> pvh_acpi::Platform {
    pvh_acpi::Platform::new()
        .device(serial::aml())
        .device(rtc::aml())
        .century(rtc::REG_CENTURY)
}

/// What the vCPU loop must do after a device handled a guest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAction {
    /// Nothing: resume the guest.
    Continue,
    /// The guest asked for a reset (i8042 command 0xfe): end the VM.
    Reset,
    /// The guest wrote this value to the exit port: end the VM with it.
    Exit(u32),
    /// The guest powered off through the ACPI sleep control register.
    PowerOff,
}

/// A device failed to handle a guest access.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Writing guest console output to the host failed.
    #[error("writing guest output failed: {0}")]
    Output(#[source] std::io::Error),
    /// Raising the UART interrupt (writing its irqfd) failed.
    #[error("raising the serial interrupt failed: {0}")]
    Interrupt(#[source] std::io::Error),
    /// Starting the RTC's timer thread (when the guest first enables an
    /// RTC interrupt) failed.
    #[error("starting the RTC timer thread failed: {0}")]
    Timer(#[source] std::io::Error),
}

/// A device on the port-I/O bus.
///
/// `offset` is the port number minus the base of the range the device was
/// registered at; `data` has the access width (1, 2 or 4 bytes).
pub trait PortDevice: Send {
    /// Fill `data` with the value the guest reads.
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// Consume a guest write; the returned action tells the vCPU loop whether
    /// the VM goes on.
    fn write(&mut self, offset: u16, data: &[u8]) -> Result<IoAction, DeviceError>;
}
