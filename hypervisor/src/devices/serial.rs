//! The 16550A UART on COM1 (0x3f8, GSI 4), from vm-superio.
//!
//! Linux registers ttyS0 only when the port behaves like a real UART and
//! raises its interrupt: the THR-empty interrupt reaches the in-kernel
//! IOAPIC/PIC through an eventfd registered as a KVM irqfd.

use std::io;
use std::sync::{Arc, OnceLock};

use kvm_ioctls::VmFd;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::{ConsoleOut, DeviceError, IoAction, PortDevice};

/// COM1 base port (the machine contract's).
pub use pvh_entry::machine::COM1_PORT as COM1_BASE;
/// A 16550 decodes eight registers.
pub const COM1_LEN: u16 = 8;
/// COM1's ISA interrupt line.
pub const COM1_GSI: u32 = 4;

/// COM1's DSDT node: `PNP0501` at [`COM1_BASE`] on GSI [`COM1_GSI`].
pub fn aml() -> Vec<u8> {
    pvh_acpi::isa::uart("COM1", COM1_BASE, COM1_LEN as u8, COM1_GSI)
}

/// An interrupt line of a device: an eventfd KVM turns into an edge on
/// a GSI (an irqfd).
///
/// A routed line ([`IrqLine::routed`]) registers its irqfd with KVM when
/// it is first raised, not when the VM is built: a guest that never
/// enables the device's interrupt (most short runs, and Linux never
/// enables the RTC's at boot) then has no irqfd, and the process exit has
/// none to tear down (each goes through a workqueue and an SRCU grace
/// period; two cost about 6% of `pvh-exit` in a nested L1,
/// docs/benchmarks.md).
#[derive(Debug)]
pub struct IrqLine {
    event: EventFd,
    route: Option<Arc<Route>>,
}

/// Where a routed line goes, and whether KVM has its irqfd yet (the
/// errno if registering failed: every later raise fails the same way).
#[derive(Debug)]
struct Route {
    vm: Arc<VmFd>,
    gsi: u32,
    registered: OnceLock<Result<(), i32>>,
}

impl IrqLine {
    /// A line that only signals its eventfd (its owner routes it, or a
    /// test reads it).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            event: EventFd::new(libc::EFD_NONBLOCK)?,
            route: None,
        })
    }

    /// A line to `gsi` of `vm`, registered as a KVM irqfd when first
    /// raised.
    pub fn routed(vm: Arc<VmFd>, gsi: u32) -> io::Result<Self> {
        Ok(Self {
            route: Some(Arc::new(Route {
                vm,
                gsi,
                registered: OnceLock::new(),
            })),
            ..Self::new()?
        })
    }

    /// The eventfd (to read in tests). Raise the line with
    /// [`Trigger::trigger`], never by writing this: that registers a
    /// routed line's irqfd first.
    pub fn eventfd(&self) -> &EventFd {
        &self.event
    }

    /// Whether KVM has this line's irqfd (a routed line that was raised).
    pub fn registered(&self) -> bool {
        self.route
            .as_ref()
            .is_some_and(|r| matches!(r.registered.get(), Some(Ok(()))))
    }

    /// A second handle on the same line (and the same registration).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            event: self.event.try_clone()?,
            route: self.route.clone(),
        })
    }
}

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        if let Some(r) = &self.route {
            r.registered
                .get_or_init(|| {
                    r.vm.register_irqfd(&self.event, r.gsi)
                        .map_err(|e| e.errno())
                })
                .map_err(|errno| {
                    let e = io::Error::from_raw_os_error(errno);
                    io::Error::new(e.kind(), format!("KVM_IRQFD for GSI {}: {e}", r.gsi))
                })?;
        }
        self.event.write(1)
    }
}

/// The UART device.
pub struct Uart {
    inner: Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleOut>,
}

impl std::fmt::Debug for Uart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uart").finish_non_exhaustive()
    }
}

impl Uart {
    /// A UART raising `irq` and writing transmitted bytes to `out`.
    pub fn new(irq: IrqLine, out: ConsoleOut) -> Self {
        Self {
            inner: Serial::new(irq, out),
        }
    }

    /// The interrupt line, to register with KVM.
    pub fn irq(&self) -> &IrqLine {
        self.inner.interrupt_evt()
    }

    /// Queues host input for the guest to receive, as much as the receive
    /// FIFO takes (the rest is for a later call); raises the receive
    /// interrupt if the guest enabled it. Returns the bytes taken.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, DeviceError> {
        let room = self.inner.fifo_capacity().min(input.len());
        if room == 0 {
            return Ok(0);
        }
        self.inner
            .enqueue_raw_bytes(input.get(..room).unwrap_or_default())
            .map_err(|e| match e {
                vm_superio::serial::Error::Trigger(e) => DeviceError::Interrupt(e),
                vm_superio::serial::Error::IOError(e) => DeviceError::Output(e),
                other => DeviceError::Output(io::Error::other(format!("{other:?}"))),
            })
    }
}

impl PortDevice for Uart {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        data.fill(0);
        if let (Some(b), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *b = self.inner.read(off);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        let (Some(&value), Ok(off)) = (data.first(), u8::try_from(offset)) else {
            return Ok(IoAction::Continue);
        };
        self.inner.write(off, value).map_err(|e| match e {
            vm_superio::serial::Error::Trigger(e) => DeviceError::Interrupt(e),
            vm_superio::serial::Error::IOError(e) => DeviceError::Output(e),
            other => DeviceError::Output(io::Error::other(format!("{other:?}"))),
        })?;
        Ok(IoAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::console::Capture;

    #[test]
    fn received_bytes_are_read_in_order_with_data_ready() {
        let mut u = Uart::new(
            IrqLine::new().unwrap(),
            ConsoleOut::new(Box::new(io::sink())),
        );
        // IER: receive-data interrupt (bit 0).
        u.write(1, &[0x01]).unwrap();
        let long = vec![b'x'; 100];
        assert_eq!(u.receive(b"ab").unwrap(), 2);
        assert_eq!(u.irq().eventfd().read().unwrap(), 1);
        let taken = u.receive(&long).unwrap();
        assert!(taken < long.len(), "the FIFO is bounded: took {taken}");
        assert_eq!(u.receive(&long).unwrap(), 0, "full");
        let mut b = [0u8];
        let mut lsr = [0u8];
        u.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        u.read(0, &mut b);
        assert_eq!(b, *b"a");
        u.read(0, &mut b);
        assert_eq!(b, *b"b");
        for _ in 0..taken {
            u.read(0, &mut b);
        }
        u.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 0, "drained");
    }

    #[test]
    fn transmits_and_interrupts_when_thre_enabled() {
        let cap = Capture::default();
        let mut u = Uart::new(
            IrqLine::new().unwrap(),
            ConsoleOut::new(Box::new(cap.clone())),
        );
        let mut iir = [0u8];
        // IER: enable THR-empty interrupt (bit 1): raised at once.
        u.write(1, &[0x02]).unwrap();
        assert_eq!(u.irq().eventfd().read().unwrap(), 1);
        // IIR says THR empty (0x02) and acknowledges it.
        u.read(2, &mut iir);
        assert_eq!(iir[0] & 0x0f, 0x02);
        u.write(0, b"h").unwrap();
        u.read(2, &mut iir);
        u.write(0, b"i").unwrap();
        assert_eq!(&*cap.0.lock().unwrap(), b"hi");
        // One interrupt per transmitted byte the driver acknowledged.
        assert_eq!(u.irq().eventfd().read().unwrap(), 2);
        // LSR: THR empty and transmitter idle (bits 5 and 6).
        let mut lsr = [0u8];
        u.read(5, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60);
    }
}
