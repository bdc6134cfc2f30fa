//! Booting a guest end to end: KVM, guest RAM, the loader, the VM, vCPU 0,
//! and the run. The CLI (`pvh boot`) is a thin layer over [`boot`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pvh_acpi::AcpiError;
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
/// points at their RSDP.
pub fn prepare(config: &BootConfig<'_>, opts: &BootOptions) -> Result<Prepared, BootError> {
    // Check the input before touching KVM: a bad kernel is a bad kernel
    // whether or not this machine has /dev/kvm.
    let checked = domain_builder().check(config, opts.memory, u32::from(opts.vcpus))?;
    build(checked, opts)
}

/// The host half of [`prepare`] for a guest [`build::check`] accepted:
/// what can still fail here is the host (memory, KVM), not the guest.
pub fn build(checked: Checked<'_>, opts: &BootOptions) -> Result<Prepared, BootError> {
    let Checked { ram, plan, tables } = checked;
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

/// Boots the guest described by `config` and runs it to its end.
pub fn boot(config: &BootConfig<'_>, opts: &BootOptions) -> Result<(RunReport, Vm), BootError> {
    let Prepared { vm, vcpus, .. } = prepare(config, opts)?;
    let report = runner::run(vcpus, opts.timeout)?;
    Ok((report, vm))
}
