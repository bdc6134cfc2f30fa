//! Booting a guest end to end: KVM, guest RAM, the loader, the VM, vCPU 0,
//! and the run. The CLI (`pvh boot`) is a thin layer over [`boot`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pvh_acpi::AcpiError;
use pvh_bootdomains::BootInfo;
use pvh_bootdomains::build::{self, BuildError, Checked, DomainBuilder};
use pvh_loader::{BootConfig, LoadError};
use vm_memory::GuestAddress;

use crate::devices::ConsoleOut;
use crate::error::Error;
use crate::kvm;
use crate::memory;
use crate::outcome::status;
use crate::runner::{self, RunReport};
use crate::vcpu::Vcpu;
use crate::vm::{
    KVM_IDENTITY_MAP_ADDR, KVM_RESERVED, KVM_RESERVED_NAME, KVM_TSS_ADDR, KvmReserved, Vm,
};

/// How to run the guest (everything that is not the guest itself).
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The KVM device (normally `/dev/kvm`).
    pub kvm_device: PathBuf,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// End the guest after this long.
    pub timeout: Option<Duration>,
    /// Where UART and debug-console output goes.
    pub console: ConsoleOut,
    /// vCPUs to create (at least 1). vCPU 0 boots; the others wait for the
    /// guest's INIT/SIPI, as application processors do.
    pub vcpus: u8,
}

/// Booting failed before the guest ran.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The domain cannot be built (kernel, modules, memory size, vCPU
    /// count, ACPI tables): decided by [`build::check`] before anything is
    /// allocated.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The loader rejected the guest while writing it.
    #[error("loading the guest failed: {0}")]
    Load(#[from] LoadError),
    /// KVM or VM setup failed.
    #[error(transparent)]
    Vmm(#[from] Error),
    /// The ACPI tables could not be built or written (a vCPU count the
    /// tables cannot describe, or a region that does not fit them).
    #[error("ACPI tables: {0}")]
    Acpi(#[from] AcpiError),
}

impl BootError {
    /// The `pvh` exit status for this failure.
    pub fn status(&self) -> u8 {
        match self {
            Self::Build(_) | Self::Load(_) => status::BAD_INPUT,
            Self::Vmm(Error::KvmOpen { .. } | Error::KvmApiVersion { .. } | Error::KvmCap(_)) => {
                status::NO_KVM
            }
            Self::Vmm(_) => status::VMM_ERROR,
            Self::Acpi(AcpiError::CpuCount(_)) => status::BAD_INPUT,
            Self::Acpi(_) => status::VMM_ERROR,
        }
    }
}

/// A VM with its boot vCPU set up, not yet running.
#[derive(Debug)]
pub struct Prepared {
    /// The VM.
    pub vm: Vm,
    /// The boot vCPU.
    pub vcpus: Vec<Vcpu>,
    /// What the loader did.
    pub guest: pvh_loader::LoadedGuest,
}

/// Checks the guest ([`build::check`]: plan, ACPI tables, vCPU count),
/// then [`build()`]s it: opens KVM, loads the guest into fresh RAM, creates
/// the VM and its vCPUs, and gives the boot vCPU the loader's initial
/// state.
///
/// With [`BootConfig::acpi`] set (see [`acpi_config`]), ACPI tables for
/// `opts.vcpus` vCPUs go into the region the plan reserved, and start_info
/// points at their RSDP; the matching MP table goes into its own region
/// at 0xf0000.
pub fn prepare(config: &BootConfig<'_>, opts: &BootOptions) -> Result<Prepared, BootError> {
    // Check the input before touching KVM: a bad kernel is a bad kernel
    // whether or not this machine has /dev/kvm.
    let checked = domain_builder().check(config, opts.memory, u32::from(opts.vcpus))?;
    build(checked, opts)
}

/// The host half of [`prepare`] for a guest [`build::check`] accepted:
/// what can still fail here is the host (memory, KVM), not the guest.
pub fn build(checked: Checked<'_>, opts: &BootOptions) -> Result<Prepared, BootError> {
    let Checked {
        ram,
        plan,
        tables,
        mp_table,
    } = checked;
    let kvm = kvm::open(&opts.kvm_device)?;
    let ranges: Vec<(GuestAddress, usize)> = ram
        .regions()
        .iter()
        .map(|&(start, len)| {
            usize::try_from(len)
                .map(|len| (GuestAddress(start), len))
                .map_err(|_| Error::MemoryRegion {
                    addr: start,
                    size: len,
                    reason: "larger than the host address space".into(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mem = memory::allocate(&ranges)?;
    // `mem` is fresh anonymous memory: all zeros, so the loader writes none.
    let guest = pvh_loader::load_into_zeroed(&mem, &plan)?;
    if let (Some(tables), Some(region)) = (&tables, plan.acpi()) {
        tables.write_to(&mem, &region, plan.rsdp())?;
    }
    if let (Some(table), Some(region)) = (&mp_table, plan.mp_table()) {
        table.write_to(&mem, &region)?;
    }
    let reserved = KvmReserved {
        tss: KVM_TSS_ADDR,
        identity_map: KVM_IDENTITY_MAP_ADDR,
    };
    let max = kvm.get_max_vcpus().min(usize::from(u8::MAX));
    if opts.vcpus == 0 || usize::from(opts.vcpus) > max {
        return Err(Error::TooManyVcpus {
            requested: usize::from(opts.vcpus),
            max,
        }
        .into());
    }
    let vm = Vm::new(&kvm, mem, reserved, opts.console.clone())?;
    let vcpus = (0..opts.vcpus)
        .map(|id| Vcpu::new(&kvm, vm.fd(), id, Arc::clone(vm.bus())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(boot_cpu) = vcpus.first() {
        boot_cpu.set_boot_state(&guest.cpu)?;
    }
    Ok(Prepared { vm, vcpus, guest })
}

/// `config` with an ACPI region of [`pvh_acpi::REGION_SIZE`] bytes: what
/// `pvh boot` does unless `--no-acpi` ([`build::with_acpi_region`]).
pub fn acpi_config<'a>(config: BootConfig<'a>) -> BootConfig<'a> {
    build::with_acpi_region(config)
}

/// How `pvh` builds every domain: the built-in stub for bzImages booted
/// as PVH, the ACPI platform of its devices
/// ([`crate::devices::acpi_platform`]), and KVM's pages
/// ([`KVM_RESERVED`]) reserved in guest-physical space.
pub fn domain_builder() -> DomainBuilder<'static> {
    let b = DomainBuilder::new()
        .platform(crate::devices::acpi_platform())
        .reserve(KVM_RESERVED_NAME, KVM_RESERVED);
    match crate::probe::STUB {
        Some(stub) => b.stub(stub),
        None => b,
    }
}

/// What pvh adds to a Linux kernel's command line: its machine has no PCI
/// host bridge, so nothing answers at the configuration ports (0xcf8,
/// 0xcfc), and Linux would still probe them: about 300 port exits per
/// boot (its early quirks and AMD northbridge scans read config space
/// without first checking that it exists), about 1% of a nested boot
/// (docs/benchmarks.md). Firecracker, whose machine has none either,
/// adds the same.
pub const NO_PCI_ARG: &str = "pci=off";

/// Fits every domain's command line to pvh's machine: a Linux kernel
/// ([`pvh_loader::KernelImage::is_linux`]) gets [`NO_PCI_ARG`] in front,
/// unless its command line already says something about `pci=` (the
/// user's choice stands) or would then be longer than the kernel takes.
/// In front, not at the end: what follows a ` -- ` goes to init. Other
/// kernels (the probe, a unikernel) and `pvh wrap` images (whose stub
/// takes the command line as it finds it, or its embedded one when it
/// is empty) are left alone. `pvh boot` and `pvh launch` both call this
/// on their [`BootInfo`] before planning, so the plan, the start info
/// and the guest see one command line.
pub fn fit_cmdlines_to_machine(info: &mut BootInfo) {
    for d in &mut info.domains {
        let Some(kernel) = info.modules.get(d.kernel) else {
            continue;
        };
        let Ok(image) = pvh_loader::KernelImage::parse(&kernel.bytes) else {
            continue;
        };
        if !image.is_linux()
            || d.cmdline
                .split_ascii_whitespace()
                .any(|a| a.starts_with("pci="))
        {
            continue;
        }
        let fitted = if d.cmdline.is_empty() {
            NO_PCI_ARG.to_string()
        } else {
            format!("{NO_PCI_ARG} {}", d.cmdline)
        };
        let fits = match &image {
            pvh_loader::KernelImage::BzImage(bz) => pvh_entry::linux::KernelNeeds::of(bz)
                .is_ok_and(|n| n.check_cmdline_len(fitted.len() as u64).is_ok()),
            // x86 Linux's COMMAND_LINE_SIZE, its NUL included.
            pvh_loader::KernelImage::PvhElf(_) => fitted.len() < 2048,
        };
        if fits {
            d.cmdline = fitted;
        }
    }
}

/// Boots the guest described by `config` and runs it to its end.
pub fn boot(config: &BootConfig<'_>, opts: &BootOptions) -> Result<(RunReport, Vm), BootError> {
    let Prepared { vm, vcpus, .. } = prepare(config, opts)?;
    let report = runner::run(vcpus, opts.timeout)?;
    Ok((report, vm))
}
