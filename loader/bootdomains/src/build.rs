//! The one domain builder: a [`BootDomain`] of a [`BootInfo`] into the
//! loader's [`BootConfig`], and [`check`]: everything about a domain that
//! can be decided before guest memory exists (the loader's plan, the ACPI
//! tables, the vCPU count). `pvh boot` (through
//! [`BootInfo::single_domain`]) and `pvh launch` (through the device-tree
//! parser, for every domain before any runs) both end here, so a guest is
//! built and checked the same way however it was described.

use core::ops::Range;

use pvh_acpi::mptable::MpTable;
use pvh_acpi::{self as acpi, AcpiError, AcpiTables, Platform};
use pvh_bootparams::XLoadFlags;
use pvh_loader::{
    BootConfig, BootPlan, BootProtocol, ElfClass, GuestRam, Kernel, KernelImage, LoadError, Module,
};

use super::types::{BootDomain, BootInfo, ModuleKind};

pub use super::types::DomainBoot;

/// What the VMM brings to every domain it builds, builder-style: the stub
/// guest that boots a bzImage as PVH (the caller's bytes: this library
/// ships no guest program), the ACPI platform its device models describe,
/// and the guest-physical ranges it reserves for itself (e.g. KVM's
/// identity-map page and TSS). The default brings none of them: a bzImage
/// booted as PVH is then [`BuildError::NoStub`], and ACPI tables have only
/// `_S5_` in their DSDT.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DomainBuilder<'a> {
    stub: Option<&'a [u8]>,
    platform: Platform,
    reserved: Vec<(&'static str, Range<u64>)>,
}

impl<'a> DomainBuilder<'a> {
    /// A builder with no stub, an empty platform and no reserved range.
    pub fn new() -> Self {
        Self::default()
    }

    /// The PVH stub guest ELF for bzImages booted as PVH.
    pub fn stub(mut self, stub: &'a [u8]) -> Self {
        self.stub = Some(stub);
        self
    }

    /// The ACPI platform (devices and their AML) every domain's tables
    /// describe.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Reserves `range` in every domain's guest-physical space
    /// ([`pvh_loader::GuestRamBuilder::reserve`]).
    pub fn reserve(mut self, name: &'static str, range: Range<u64>) -> Self {
        self.reserved.push((name, range));
        self
    }

    /// The stub, if one was given.
    pub fn stub_bytes(&self) -> Option<&'a [u8]> {
        self.stub
    }

    /// The ACPI platform.
    pub fn acpi_platform(&self) -> &Platform {
        &self.platform
    }

    /// Guest RAM of `memory` bytes with the reserved ranges.
    pub fn ram(&self, memory: u64) -> Result<GuestRam, LoadError> {
        self.reserved
            .iter()
            .fold(GuestRam::builder(memory), |b, (name, r)| {
                b.reserve(name, r.clone())
            })
            .build()
    }

    /// [`boot_config`] with this builder's stub.
    pub fn boot_config(
        &self,
        info: &'a BootInfo,
        d: &'a BootDomain,
    ) -> Result<BootConfig<'a>, BuildError> {
        boot_config(info, d, self.stub)
    }

    /// [`check`] in this builder's RAM layout and ACPI platform.
    pub fn check<'c>(
        &self,
        config: &BootConfig<'c>,
        memory: u64,
        vcpus: u32,
    ) -> Result<Checked<'c>, BuildError> {
        check(config, memory, vcpus, self)
    }
}

/// Why a domain cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A module index in the domain points past `BootInfo::modules`.
    #[error("module {index} does not exist")]
    MissingModule {
        /// The index.
        index: usize,
    },
    /// A bzImage booted as PVH needs the stub guest, and the VMM gave
    /// none ([`DomainBuilder::stub`]).
    #[error(
        "the kernel is a bzImage and the PVH stub guest is not built in; \
         use --boot-protocol linux or pvh-unpack"
    )]
    NoStub,
    /// `mode` bit 2 asks for a 64-bit domain and the kernel is not a
    /// 64-bit image.
    #[error("`mode` bit 2 asks for a 64-bit domain, but the kernel is {what}")]
    Not64Bit {
        /// What the kernel is instead.
        what: &'static str,
    },
    /// The vCPU count does not fit what pvh creates.
    #[error("{0} vCPUs: pvh creates 1 to {max}", max = acpi::MAX_CPUS)]
    Vcpus(u32),
    /// The loader cannot lay the domain out in its memory.
    #[error("loading the guest failed: {0}")]
    Load(#[from] LoadError),
    /// The ACPI tables cannot be built for it.
    #[error("ACPI tables: {0}")]
    Acpi(#[from] AcpiError),
}

/// The loader's view of domain `d`: its kernel, command line, and modules in
/// PVH order (ramdisk first, then the others), each with its headroom,
/// booted as `d.boot` says. A bzImage booted as PVH goes through `stub`
/// (the caller's stub guest ELF; none is [`BuildError::NoStub`]).
pub fn boot_config<'a>(
    info: &'a BootInfo,
    d: &'a BootDomain,
    stub: Option<&'a [u8]>,
) -> Result<BootConfig<'a>, BuildError> {
    let missing = |index| BuildError::MissingModule { index };
    let kernel = info.module(d.kernel).ok_or(missing(d.kernel))?;
    let mut modules = Vec::new();
    for &i in d.ramdisk.iter().chain(&d.extra_modules) {
        let m = info.module(i).ok_or(missing(i))?;
        modules.push(
            Module::new(&m.bytes)
                .cmdline((!m.cmdline.is_empty()).then_some(m.cmdline.as_bytes()))
                .above_4g(false)
                .headroom(if m.kind == ModuleKind::Kernel {
                    0
                } else {
                    m.headroom
                }),
        );
    }
    if d.long_mode {
        check_64bit(&kernel.bytes)?;
    }
    let is_bzimage = pvh_bootparams::BzImage::parse(&kernel.bytes).is_ok();
    let stub = match (d.boot.protocol, is_bzimage) {
        (BootProtocol::Pvh, true) => Some(stub.ok_or(BuildError::NoStub)?),
        _ => None,
    };
    let config = BootConfig::new(
        Kernel::from_protocol(d.boot.protocol, &kernel.bytes, stub).with_subarch(d.boot.subarch),
    )
    .cmdline(d.cmdline.as_bytes())
    .modules(modules);
    Ok(if d.boot.acpi {
        with_acpi_region(config)
    } else {
        config
    })
}

/// `config` with an ACPI region of [`acpi::REGION_SIZE`] bytes and an MP
/// table region of [`acpi::mptable::REGION_SIZE`] bytes reserved in its
/// plan, for the tables [`check`] builds. The two describe the same CPUs
/// and IOAPIC and come as a pair: a domain without ACPI (`--no-acpi`,
/// `pvh,acpi = <0>`) gets no firmware description at all.
pub fn with_acpi_region(config: BootConfig<'_>) -> BootConfig<'_> {
    config
        .acpi(Some(acpi::REGION_SIZE))
        .mp_table(Some(acpi::mptable::REGION_SIZE))
}

/// `mode` bit 2: the kernel must be a 64-bit ELF or a bzImage with a
/// 64-bit entry (`XLF_KERNEL_64`). An image that is neither is left to the
/// loader to refuse.
fn check_64bit(kernel: &[u8]) -> Result<(), BuildError> {
    match KernelImage::parse(kernel) {
        Ok(KernelImage::PvhElf(elf)) if elf.class != ElfClass::Elf64 => Err(BuildError::Not64Bit {
            what: "a 32-bit ELF",
        }),
        Ok(KernelImage::BzImage(bz))
            if !bz.header().xload_flags().contains(XLoadFlags::KERNEL_64) =>
        {
            Err(BuildError::Not64Bit {
                what: "a bzImage without a 64-bit entry (XLF_KERNEL_64 clear)",
            })
        }
        _ => Ok(()),
    }
}

/// What [`check`] decided for a domain: its RAM layout, the loader's plan,
/// and its ACPI and MP tables (built, not yet written).
#[derive(Debug)]
pub struct Checked<'a> {
    /// Guest RAM of the domain's size.
    pub ram: GuestRam,
    /// Every placement.
    pub plan: BootPlan<'a>,
    /// The ACPI tables for the region the plan reserved, if any.
    pub tables: Option<AcpiTables>,
    /// The MP table for the region the plan reserved, if any.
    pub mp_table: Option<MpTable>,
}

/// Everything about booting `config` in `memory` bytes with `vcpus` vCPUs
/// that can be checked without guest memory or KVM: the RAM size (with
/// `builder`'s reserved ranges), the loader's plan, the ACPI tables (of
/// `builder`'s platform), the vCPU count. What passes here fails later
/// only for want of host resources (memory, KVM).
pub fn check<'c>(
    config: &BootConfig<'c>,
    memory: u64,
    vcpus: u32,
    builder: &DomainBuilder<'_>,
) -> Result<Checked<'c>, BuildError> {
    let count = u8::try_from(vcpus)
        .ok()
        .filter(|&n| (1..=acpi::MAX_CPUS).contains(&n))
        .ok_or(BuildError::Vcpus(vcpus))?;
    let ram = builder.ram(memory)?;
    let plan = pvh_loader::plan(&ram, config)?;
    let tables = plan
        .acpi()
        .as_ref()
        .map(|region| builder.platform.build(region.start, count))
        .transpose()?;
    let mp_table = plan
        .mp_table()
        .map(|region| acpi::mptable::build(region.start, count))
        .transpose()?;
    Ok(Checked {
        ram,
        plan,
        tables,
        mp_table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CliModule, SingleDomain};
    use pvh_bootparams::synth::SynthBzImage;
    use pvh_loader::SubarchPolicy;

    fn cli(option: &'static str, bytes: &[u8], cmdline: &str) -> CliModule {
        CliModule {
            option,
            path: None,
            bytes: bytes.into(),
            cmdline: cmdline.into(),
        }
    }

    fn single(boot: DomainBoot) -> BootInfo {
        // A gzip initrd (trailer: 1 MiB) has headroom; plain modules none.
        let mut gz = vec![0u8; 64];
        gz[..2].copy_from_slice(&[0x1f, 0x8b]);
        gz[60..].copy_from_slice(&(1u32 << 20).to_le_bytes());
        BootInfo::single_domain(SingleDomain {
            kernel: cli("--kernel", b"not an image", ""),
            initrd: Some(cli("--initrd", &gz, "")),
            modules: vec![
                cli("--module", b"first", "one"),
                cli("--module", b"second", ""),
            ],
            cmdline: "console=ttyS0".into(),
            memory: 64 << 20,
            cpus: 2,
            boot,
            host_memory_limit: u64::MAX,
            hypervisor_cmdline: String::new(),
            host_memmap: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn modules_in_pvh_order_with_their_command_lines() {
        let info = single(DomainBoot::default());
        let config = boot_config(&info, &info.domains[0], None).unwrap();
        assert_eq!(config.kernel.image(), b"not an image");
        assert_eq!(config.cmdline, b"console=ttyS0");
        type Seen<'a> = (&'a [u8], Option<&'a [u8]>, u64);
        let modules: Vec<Seen<'_>> = config
            .modules
            .iter()
            .map(|m| (m.bytes, m.cmdline, m.headroom))
            .collect();
        // 1 MiB - 64 B + 256 KiB, page-aligned.
        assert_eq!(modules[0].2, 0x14_0000);
        assert_eq!(
            modules[1..],
            [
                (&b"first"[..], Some(&b"one"[..]), 0),
                (&b"second"[..], None, 0)
            ]
        );
        assert_eq!(config.kernel.stub_image(), None, "not a bzImage: no stub");
        assert_eq!(config.acpi, Some(acpi::REGION_SIZE));
        let info = single(DomainBoot {
            acpi: false,
            protocol: BootProtocol::Linux64,
            subarch: SubarchPolicy::Xen,
        });
        let config = boot_config(&info, &info.domains[0], None).unwrap();
        assert_eq!(config.acpi, None);
        assert_eq!(config.kernel.protocol(), BootProtocol::Linux64);
        assert_eq!(config.kernel.subarch(), SubarchPolicy::Xen);
    }

    #[test]
    fn a_dangling_module_index_is_an_error() {
        let mut info = single(DomainBoot::default());
        info.domains[0].extra_modules.push(9);
        let d = info.domains[0].clone();
        assert!(matches!(
            boot_config(&info, &d, None),
            Err(BuildError::MissingModule { index: 9 })
        ));
    }

    #[test]
    fn long_mode_accepts_a_64bit_kernel() {
        // A bzImage with a 64-bit entry (the 32-bit ELF case:
        // tests/bootinfo.rs).
        assert!(check_64bit(&SynthBzImage::default().build()).is_ok());
        // Not an image at all: left to the loader to refuse.
        assert!(check_64bit(b"not an image").is_ok());
    }

    #[test]
    fn check_refuses_what_launch_would_refuse() {
        let info = single(DomainBoot::default());
        let kernel = SynthBzImage::default().build();
        let config = boot_config(&info, &info.domains[0], None)
            .unwrap()
            .kernel(Kernel::linux64(&kernel));
        fn check<'c>(
            config: &BootConfig<'c>,
            memory: u64,
            vcpus: u32,
        ) -> Result<Checked<'c>, BuildError> {
            DomainBuilder::new().check(config, memory, vcpus)
        }
        let ok = check(&config, 64 << 20, 2).unwrap();
        assert!(ok.tables.is_some());
        assert!(ok.mp_table.is_some());
        assert!(matches!(
            check(&config, 64 << 20, 33),
            Err(BuildError::Vcpus(33))
        ));
        assert!(matches!(
            check(&config, 64 << 20, 0),
            Err(BuildError::Vcpus(0))
        ));
        assert!(matches!(
            check(&config, (64 << 20) + 1, 1),
            Err(BuildError::Load(_))
        ));
    }
}
