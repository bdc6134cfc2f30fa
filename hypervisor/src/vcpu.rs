//! One vCPU: creation (CPUID, LAPIC, FPU), initial state from the loader's
//! [`CpuState`], and the run loop that turns every VM exit into either a
//! device access or the end of the VM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, Msrs, kvm_fpu,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use pvh_loader::CpuState;

use crate::cpuid;
use crate::devices::{IoAction, IoBus};
use crate::error::{Error, kvm_op};
use crate::lapic;
use crate::msr;
use crate::outcome::{RegsDump, VmEnd};

/// x87 control word after FNINIT (all exceptions masked, 64-bit precision).
const FCW_DEFAULT: u16 = 0x37f;
/// MXCSR after reset (all SSE exceptions masked).
const MXCSR_DEFAULT: u32 = 0x1f80;
/// The part of a vCPU's run area port data may occupy: the `kvm_run` page
/// and the PIO page after it (`KVM_PIO_PAGE_OFFSET` = 1). KVM's mmap size is
/// at least this large on x86.
const RUN_AREA_DATA_LIMIT: usize = 2 * 4096;

/// Exit counts of one vCPU, for `--verbose`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VcpuStats {
    /// Every return from KVM_RUN.
    pub exits: u64,
    /// Port reads and writes.
    pub io: u64,
    /// MMIO reads (answered with all ones).
    pub mmio_reads: u64,
    /// MMIO writes (dropped).
    pub mmio_writes: u64,
    /// KVM_RUN interrupted by a signal.
    pub interrupted: u64,
}

/// A vCPU and the devices it reaches.
#[derive(Debug)]
pub struct Vcpu {
    id: u8,
    fd: VcpuFd,
    bus: Arc<IoBus>,
    stats: VcpuStats,
}

/// What one exit means for the loop.
enum Step {
    Continue,
    PortIo,
    End(Box<VmEnd>),
    /// End, with the registers captured after the exit is released.
    EndWithRegs(fn(Option<RegsDump>) -> VmEnd),
    InternalError,
    FailEntry(u64, u32),
    Unhandled(String),
}

impl Vcpu {
    /// Creates vCPU `id` (also its APIC ID) in `vm`, with KVM's supported
    /// CPUID (hypervisor bit set), the LAPIC in virtual-wire mode, a reset
    /// FPU and the boot MSRs ([`msr::boot_msrs`]: MTRRs enabled, WB).
    pub fn new(kvm: &Kvm, vm: &VmFd, id: u8, bus: Arc<IoBus>) -> Result<Self, Error> {
        // Port data lives in the run area's second page; make sure KVM maps it.
        let mmap = kvm
            .get_vcpu_mmap_size()
            .map_err(kvm_op("KVM_GET_VCPU_MMAP_SIZE"))?;
        if mmap < RUN_AREA_DATA_LIMIT {
            return Err(Error::KvmCap("a vCPU run area with a PIO data page"));
        }
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(kvm_op("KVM_CREATE_VCPU"))?;
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_op("KVM_GET_SUPPORTED_CPUID"))?;
        cpuid::patch(
            &mut cpuid,
            id,
            kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer),
        );
        fd.set_cpuid2(&cpuid).map_err(kvm_op("KVM_SET_CPUID2"))?;
        let mut lapic_state = fd.get_lapic().map_err(kvm_op("KVM_GET_LAPIC"))?;
        lapic::set_virtual_wire(&mut lapic_state);
        fd.set_lapic(&lapic_state)
            .map_err(kvm_op("KVM_SET_LAPIC"))?;
        let fpu = kvm_fpu {
            fcw: FCW_DEFAULT,
            mxcsr: MXCSR_DEFAULT,
            ..Default::default()
        };
        fd.set_fpu(&fpu).map_err(kvm_op("KVM_SET_FPU"))?;
        let boot_msrs = msr::boot_msrs();
        let msrs = Msrs::from_entries(&boot_msrs)
            .map_err(|_| Error::KvmCap("a KVM_SET_MSRS list of the boot MSRs"))?;
        // KVM sets MSRs in order and stops at the first it refuses.
        let set = fd.set_msrs(&msrs).map_err(kvm_op("KVM_SET_MSRS"))?;
        if set != boot_msrs.len() {
            return Err(Error::KvmCap("the boot MSRs (IA32_MTRR_DEF_TYPE)"));
        }
        Ok(Self {
            id,
            fd,
            bus,
            stats: VcpuStats::default(),
        })
    }

    /// This vCPU's index.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Exit counts so far.
    pub fn stats(&self) -> VcpuStats {
        self.stats
    }

    /// Loads the boot state the loader computed.
    pub fn set_boot_state(&self, state: &CpuState) -> Result<(), Error> {
        let mut regs = self.fd.get_regs().map_err(kvm_op("KVM_GET_REGS"))?;
        let mut sregs = self.fd.get_sregs().map_err(kvm_op("KVM_GET_SREGS"))?;
        state.to_kvm(&mut regs, &mut sregs);
        self.fd.set_sregs(&sregs).map_err(kvm_op("KVM_SET_SREGS"))?;
        self.fd.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;
        Ok(())
    }

    /// The current registers, if KVM hands them out.
    pub fn dump(&self) -> Option<RegsDump> {
        Some(RegsDump {
            regs: self.fd.get_regs().ok()?,
            sregs: self.fd.get_sregs().ok()?,
        })
    }

    /// Runs until the VM ends or `stop` is raised (then [`VmEnd::Stopped`]).
    ///
    /// `stop` is checked after every exit; a thread blocked inside KVM_RUN
    /// is brought out by a signal (see [`crate::runner`]).
    pub fn run(&mut self, stop: &AtomicBool) -> VmEnd {
        loop {
            if stop.load(Ordering::SeqCst) {
                return VmEnd::Stopped(self.dump());
            }
            let step = self.step();
            match step {
                Step::Continue => {}
                Step::PortIo => {
                    if let Some(end) = self.port_io() {
                        return end;
                    }
                }
                Step::End(end) => return *end,
                Step::EndWithRegs(make) => return make(self.dump()),
                Step::FailEntry(reason, cpu) => {
                    return VmEnd::FailEntry {
                        reason,
                        cpu,
                        regs: self.dump(),
                    };
                }
                Step::InternalError => {
                    let (suberror, data) = self.internal_error();
                    return VmEnd::InternalError {
                        suberror,
                        data,
                        regs: self.dump(),
                    };
                }
                Step::Unhandled(exit) => {
                    return VmEnd::Unhandled {
                        exit,
                        regs: self.dump(),
                    };
                }
            }
        }
    }

    /// One KVM_RUN and the handling of its exit.
    fn step(&mut self) -> Step {
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            // A signal (the stop kick) or a spurious wake-up: look at `stop`.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.stats.interrupted += 1;
                return Step::Continue;
            }
            Err(source) => {
                return Step::End(Box::new(VmEnd::Kvm {
                    op: "KVM_RUN",
                    source,
                }));
            }
        };
        self.stats.exits += 1;
        match exit {
            // Handled after the exit's borrow of the run area ends, so the
            // access can be split by its width (string I/O: `rep outsb`).
            VcpuExit::IoIn(..) | VcpuExit::IoOut(..) => Step::PortIo,
            VcpuExit::MmioRead(_addr, data) => {
                // Nothing is mapped there: an unclaimed bus reads all ones.
                self.stats.mmio_reads += 1;
                data.fill(0xff);
                Step::Continue
            }
            VcpuExit::MmioWrite(_addr, _data) => {
                self.stats.mmio_writes += 1;
                Step::Continue
            }
            VcpuExit::Hlt => Step::EndWithRegs(VmEnd::Halted),
            VcpuExit::Shutdown => Step::EndWithRegs(VmEnd::TripleFault),
            VcpuExit::FailEntry(reason, cpu) => Step::FailEntry(reason, cpu),
            VcpuExit::InternalError => Step::InternalError,
            VcpuExit::SystemEvent(kind, data) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => Step::End(Box::new(VmEnd::Shutdown)),
                KVM_SYSTEM_EVENT_RESET => Step::End(Box::new(VmEnd::Reset)),
                _ => Step::Unhandled(format!("system event {kind} {data:x?}")),
            },
            // The kick arrived with immediate_exit set or between exits.
            VcpuExit::Intr => {
                self.stats.interrupted += 1;
                Step::Continue
            }
            other => Step::Unhandled(format!("{other:?}")),
        }
    }

    /// Carries out the port access of the last KVM_EXIT_IO: `count`
    /// accesses of `size` bytes each (more than one for string I/O), in
    /// order, stopping at the first that ends the VM.
    fn port_io(&mut self) -> Option<VmEnd> {
        let run = self.fd.get_kvm_run();
        // SAFETY: called only right after KVM_RUN returned KVM_EXIT_IO, for
        // which `io` is the union member KVM filled in (plain integers).
        let io = unsafe { run.__bindgen_anon_1.io };
        let size = usize::from(io.size);
        let len = size.saturating_mul(io.count as usize);
        let offset = usize::try_from(io.data_offset).unwrap_or(usize::MAX);
        // KVM keeps the data inside the vCPU's mmap'd run area (one page
        // after the struct); refuse anything that could point elsewhere.
        if size == 0 || offset.saturating_add(len) > RUN_AREA_DATA_LIMIT {
            return Some(VmEnd::Unhandled {
                exit: format!(
                    "KVM_EXIT_IO with size {} count {} data offset {:#x}",
                    io.size, io.count, io.data_offset
                ),
                regs: self.dump(),
            });
        }
        let base = (run as *mut kvm_bindings::kvm_run).cast::<u8>();
        // SAFETY: `offset + len` lies within the run area KVM maps for this
        // vCPU (checked against the minimum mmap size above, as kvm-ioctls
        // does when it builds `VcpuExit::IoIn/IoOut`); nothing else
        // references it while this exclusive borrow of `self.fd` lasts.
        let data = unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) };
        let input = u32::from(io.direction) == kvm_bindings::KVM_EXIT_IO_IN;
        for chunk in data.chunks_exact_mut(size) {
            self.stats.io += 1;
            if input {
                self.bus.read(io.port, chunk);
                continue;
            }
            match self.bus.write(io.port, chunk) {
                Ok(IoAction::Continue) => {}
                Ok(IoAction::Reset) => return Some(VmEnd::Reset),
                Ok(IoAction::Exit(v)) => return Some(VmEnd::ExitPort(v)),
                Ok(IoAction::PowerOff) => return Some(VmEnd::PowerOff),
                Err(e) => return Some(VmEnd::Device(e)),
            }
        }
        None
    }

    /// The sub-error and data words of the last KVM_EXIT_INTERNAL_ERROR.
    fn internal_error(&mut self) -> (u32, Vec<u64>) {
        let run = self.fd.get_kvm_run();
        // SAFETY: called only right after KVM_RUN returned
        // KVM_EXIT_INTERNAL_ERROR, for which `internal` is the union member
        // KVM filled in; it is plain integers, any bit pattern is valid.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = usize::try_from(internal.ndata)
            .unwrap_or(usize::MAX)
            .min(internal.data.len());
        let data = internal.data.get(..n).unwrap_or_default().to_vec();
        (internal.suberror, data)
    }
}
