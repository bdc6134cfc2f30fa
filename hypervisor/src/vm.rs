//! The VM: KVM VM fd, guest RAM, the in-kernel interrupt controllers and
//! timer, and the port-I/O devices.

use std::sync::{Arc, Mutex};

use crate::memory::GuestRam;
use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Kvm, VmFd};

use crate::devices::debugcon::{DEBUGCON_PORT, DebugCon};
use crate::devices::exit_port::{EXIT_PORT, EXIT_PORT_LEN, ExitPort};
use crate::devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use crate::devices::rtc::{RTC_BASE, RTC_GSI, RTC_LEN, Rtc};
use crate::devices::serial::{COM1_BASE, COM1_GSI, COM1_LEN, IrqLine, Uart};
use crate::devices::sleep::{SLEEP_CONTROL_PORT, SleepControl};
use crate::devices::{ConsoleOut, IoBus};
use crate::error::{Error, kvm_op};
use crate::memory;

/// KVM's identity-map page (`KVM_SET_IDENTITY_MAP_ADDR`), one page.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// KVM's TSS (`KVM_SET_TSS_ADDR`), three pages right after the identity map.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// The range `pvh` reserves for KVM (identity-map page + TSS), inside the
/// MMIO hole: passed to the loader as a reserved range
/// ([`pvh_loader::GuestRamBuilder::reserve`]), so the memory map calls it
/// RESERVED and nothing is placed there.
pub const KVM_RESERVED: core::ops::Range<u64> = KVM_IDENTITY_MAP_ADDR..KVM_TSS_ADDR + 3 * 4096;
/// The name the plan shows for [`KVM_RESERVED`].
pub const KVM_RESERVED_NAME: &str = "hypervisor reserved";

/// Guest-physical addresses KVM needs for its own use on Intel hosts
/// (real-mode emulation): a 3-page TSS and a 1-page identity-map table.
/// They must lie below 4 GiB, outside guest RAM the guest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmReserved {
    /// `KVM_SET_TSS_ADDR` (three pages).
    pub tss: u64,
    /// `KVM_SET_IDENTITY_MAP_ADDR` (one page).
    pub identity_map: u64,
}

/// A created VM, ready for vCPUs.
#[derive(Debug)]
pub struct Vm {
    fd: Arc<VmFd>,
    mem: GuestRam,
    bus: Arc<IoBus>,
    uart: Arc<Mutex<Uart>>,
}

impl Vm {
    /// Creates the VM: registers `mem`, sets the KVM-reserved addresses,
    /// creates the in-kernel irqchip (PIC + IOAPIC) and PIT, and maps the
    /// port-I/O devices, with the UART and debug console writing to `console`.
    pub fn new(
        kvm: &Kvm,
        mem: GuestRam,
        reserved: KvmReserved,
        console: ConsoleOut,
    ) -> Result<Self, Error> {
        let fd = kvm.create_vm().map_err(kvm_op("KVM_CREATE_VM"))?;
        memory::register(&fd, &mem)?;
        let tss = usize::try_from(reserved.tss).map_err(|_| Error::MemoryRegion {
            addr: reserved.tss,
            size: 3 * 4096,
            reason: "TSS address does not fit".into(),
        })?;
        fd.set_tss_address(tss)
            .map_err(kvm_op("KVM_SET_TSS_ADDR"))?;
        fd.set_identity_map_address(reserved.identity_map)
            .map_err(kvm_op("KVM_SET_IDENTITY_MAP_ADDR"))?;
        // The irqchip must exist before vCPUs are created so each gets a
        // local APIC; without the PIT Linux has no tick and hangs after init.
        fd.create_irq_chip().map_err(kvm_op("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            // Let the in-kernel PIT answer port 0x61 (speaker/gate) too.
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(kvm_op("KVM_CREATE_PIT2"))?;
        let fd = Arc::new(fd);
        let (bus, uart) = Self::devices(&fd, console)?;
        Ok(Self {
            fd,
            mem,
            bus: Arc::new(bus),
            uart,
        })
    }

    fn devices(fd: &Arc<VmFd>, console: ConsoleOut) -> Result<(IoBus, Arc<Mutex<Uart>>), Error> {
        let mut bus = IoBus::new();
        let irq = IrqLine::routed(Arc::clone(fd), COM1_GSI).map_err(|source| Error::Os {
            op: "creating the UART eventfd",
            source,
        })?;
        let uart = Arc::new(Mutex::new(Uart::new(irq, console.clone())));
        bus.register(COM1_BASE, COM1_LEN, uart.clone())?;
        bus.register(I8042_BASE, I8042_LEN, Arc::new(Mutex::new(I8042::new())))?;
        let rtc_irq = IrqLine::routed(Arc::clone(fd), RTC_GSI).map_err(|source| Error::Os {
            op: "creating the RTC eventfd",
            source,
        })?;
        let rtc = Rtc::new(Some(rtc_irq));
        bus.register(RTC_BASE, RTC_LEN, Arc::new(Mutex::new(rtc)))?;
        bus.register(
            DEBUGCON_PORT,
            1,
            Arc::new(Mutex::new(DebugCon::new(console))),
        )?;
        bus.register(EXIT_PORT, EXIT_PORT_LEN, Arc::new(Mutex::new(ExitPort)))?;
        // The FADT's sleep registers. Registered with or without ACPI: a
        // guest only finds the port through the FADT.
        bus.register(SLEEP_CONTROL_PORT, 1, Arc::new(Mutex::new(SleepControl)))?;
        Ok((bus, uart))
    }

    /// The KVM VM fd.
    pub fn fd(&self) -> &Arc<VmFd> {
        &self.fd
    }

    /// Guest RAM.
    pub fn memory(&self) -> &GuestRam {
        &self.mem
    }

    /// COM1, for feeding it input ([`Uart::receive`]).
    pub fn uart(&self) -> &Arc<Mutex<Uart>> {
        &self.uart
    }

    /// The port-I/O bus (shared with the vCPU threads).
    pub fn bus(&self) -> &Arc<IoBus> {
        &self.bus
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // KVM forgets guest RAM before `mem` unmaps it (fields drop after this).
        memory::unregister(&self.fd, &self.mem);
    }
}
