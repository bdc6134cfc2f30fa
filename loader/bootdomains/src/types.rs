//! The common structures: what the boot loader handed over ([`BootModule`]),
//! the domains to build ([`BootDomain`]), and both together ([`BootInfo`]).
//!
//! Modelled on Xen's `boot_info` / `boot_module` / `boot_domain`: a domain
//! refers to its modules by index into [`BootInfo::modules`], so a module
//! is described once however it was found.

use pvh_loader::input::Input;
use std::path::PathBuf;

use pvh_bootparams::Compression;
use pvh_loader::{BootProtocol, SubarchPolicy};

/// What a boot module is for (Xen's `boot_module_kind`, minus the entries
/// that only make sense inside Xen itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// A domain's kernel.
    Kernel,
    /// A domain's initial ramdisk.
    Ramdisk,
    /// A device tree for a domain.
    DeviceTree,
    /// CPU microcode for the host.
    Microcode,
    /// An XSM (FLASK) policy for the host.
    XsmPolicy,
    /// A hypervisor configuration blob.
    Config,
    /// A module whose kind the tree does not say and position did not
    /// settle.
    Unknown,
}

/// The first four bytes of a FLASK (XSM) policy, little-endian at offset 0
/// (Xen's `XSM_MAGIC`, `xen/include/xsm/xsm.h`): how Xen finds a policy
/// among the boot modules, and how pvh keeps one from being taken as a
/// domain's kernel or ramdisk.
pub const XSM_MAGIC: u32 = 0xf97c_ff8c;

/// Whether `bytes` start with [`XSM_MAGIC`].
pub fn is_xsm_policy(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&XSM_MAGIC.to_le_bytes()[..])
}

/// Where a module's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// Entry N of the boot loader's module list (`module-index` / `mb-index`).
    ModuleIndex(u32),
    /// A file named by `xen,uefi-binary`, resolved under the caller's
    /// directory (the path is the resolved one).
    File(PathBuf),
    /// The boot-loader module placed at `addr` (`reg`, or the hyperlaunch
    /// design's `module-addr`).
    Reg {
        /// Load address.
        addr: u64,
        /// Size of the region (at least the module's size; the rest is
        /// headroom).
        size: u64,
    },
    /// A `pvh boot` option (`--kernel`, `--initrd`, `--module`).
    CommandLine {
        /// The option, e.g. `--module`.
        option: &'static str,
        /// The file, if the bytes came from one (the built-in probe has none).
        path: Option<PathBuf>,
    },
}

/// One boot module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootModule {
    /// What it is for.
    pub kind: ModuleKind,
    /// Where it came from.
    pub origin: ModuleOrigin,
    /// Its bytes, shared: two domains using the same loader module share
    /// one copy.
    pub bytes: Input,
    /// Its command line: the loader's module string if non-empty, else the
    /// node's `bootargs`, else empty.
    pub cmdline: String,
    /// The compression recognised by magic (of the bzImage payload for a
    /// bzImage), `None` for plain data.
    pub compression: Option<Compression>,
    /// Bytes the guest's loader keeps free right after the module, so the
    /// domain can decompress it in place: the larger of the compression
    /// estimate ([`super::compression::headroom`]) and, for a `reg` region
    /// larger than the file, the rest of the region. 0 for plain data.
    pub headroom: u64,
    /// The node it was described by (or the command-line option).
    pub node: String,
}

/// The guest type of a domain. Only PVH is built; the tree's `mode` is
/// checked against this (other modes are rejected while parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DomainMode {
    /// PVH: HVM container, no device model, entered via the PVH ELF note.
    #[default]
    Pvh,
}

bitflags::bitflags! {
    /// A domain's `capabilities` (Xen's `DOMAIN_CAPS_*`). What pvh does
    /// with each is in `docs/bootdomains.md`: at most one domain has each.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Capabilities: u32 {
        /// May control other domains. Under pvh: the domain that leads
        /// the launch; when it ends, pvh ends the others and exits with
        /// its status (as a Xen host goes down with its control domain).
        const CONTROL = 0x1;
        /// Owns the hardware. Under pvh: owns the console; its lines are
        /// written without the `(dN) ` prefix the other domains get.
        const HARDWARE = 0x2;
        /// Runs xenstored. Refused by pvh, which has no xenstore for the
        /// domain to serve.
        const XENSTORE = 0x4;
    }
}

/// How a domain is booted: what the binding itself does not say. The
/// command line gives the defaults (`--boot-protocol`, `--subarch`,
/// `--no-acpi`); a domain node's `pvh,boot-protocol`, `pvh,subarch` and
/// `pvh,acpi` override them for that domain. Built from
/// [`DomainBoot::default`] and its setters; the fields stay readable and
/// assignable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DomainBoot {
    /// The boot protocol.
    pub protocol: BootProtocol,
    /// `hardware_subarch` for zero-page boots.
    pub subarch: SubarchPolicy,
    /// Whether the domain gets ACPI tables.
    pub acpi: bool,
}

impl Default for DomainBoot {
    /// PVH, subarch PC, ACPI on: what `pvh boot` and `pvh launch` do by
    /// default.
    fn default() -> Self {
        Self {
            protocol: BootProtocol::Pvh,
            subarch: SubarchPolicy::Pc,
            acpi: true,
        }
    }
}

impl DomainBoot {
    /// The boot protocol.
    #[must_use]
    pub fn protocol(mut self, protocol: BootProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// `hardware_subarch` for zero-page boots.
    #[must_use]
    pub fn subarch(mut self, subarch: SubarchPolicy) -> Self {
        self.subarch = subarch;
        self
    }

    /// Whether the domain gets ACPI tables.
    #[must_use]
    pub fn acpi(mut self, acpi: bool) -> Self {
        self.acpi = acpi;
        self
    }
}

/// One domain to build at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDomain {
    /// Domain id: the tree's `domid`, or allocated (lowest free from 1).
    pub domid: u32,
    /// The node name (`domU1`), for messages and console prefixes.
    pub name: String,
    /// The node path (`/chosen/domU1`), or `command line` for `pvh boot`.
    pub node: String,
    /// Guest type.
    pub mode: DomainMode,
    /// `mode` bit 2 (64-bit): the kernel must be a 64-bit image, checked
    /// when the domain is planned.
    pub long_mode: bool,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// The memory the domain gets, bytes: `memory`, or less (never below
    /// `mem_min`) when the host limit cannot give every domain its
    /// `memory`.
    pub memory: u64,
    /// The tree's `memory` (bytes), before any lowering.
    pub memory_asked: u64,
    /// Minimum memory, bytes (`mem-min`, default `memory`).
    pub mem_min: u64,
    /// Maximum memory, bytes (`mem-max`, default `memory`): a ceiling the
    /// domain's memory never exceeds (pvh does not grow a domain after
    /// boot).
    pub mem_max: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Index of the kernel in [`BootInfo::modules`].
    pub kernel: usize,
    /// Index of the ramdisk in [`BootInfo::modules`].
    pub ramdisk: Option<usize>,
    /// Indices of the domain's other modules (device tree, unknown kind),
    /// in tree order.
    pub extra_modules: Vec<usize>,
    /// The kernel command line (the kernel module's [`BootModule::cmdline`]
    /// or, for `pvh boot`, `--cmdline`).
    pub cmdline: String,
    /// How it is booted (command-line defaults, tree overrides applied).
    pub boot: DomainBoot,
}

/// One range of the host's memory map (`/sys/firmware/memmap`: the
/// firmware's map as the host kernel got it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMemoryRange {
    /// Physical start.
    pub start: u64,
    /// Physical end, exclusive.
    pub end: u64,
    /// The type as the host names it (`System RAM`, `Reserved`, ...).
    pub kind: String,
}

/// Everything needed to build the boot-time domains (Xen's `boot_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The boot loader's name (Xen's `boot_info.loader`): pvh itself,
    /// with its version.
    pub loader_name: String,
    /// The hypervisor's command line (Xen's `boot_info.cmdline`): the
    /// arguments `pvh` was started with.
    pub cmdline: String,
    /// The host's memory map (Xen's `boot_info.memmap`); empty when the
    /// host does not publish one.
    pub host_memmap: Vec<HostMemoryRange>,
    /// Every module found, in tree order.
    pub modules: Vec<BootModule>,
    /// The domains, in tree order.
    pub domains: Vec<BootDomain>,
    /// The host memory limit the caller passed, bytes. The domains'
    /// `memory` together stay within it.
    pub host_memory_limit: u64,
}

impl BootInfo {
    /// The module at `index` of [`BootInfo::modules`].
    pub fn module(&self, index: usize) -> Option<&BootModule> {
        self.modules.get(index)
    }

    /// A domain's kernel module.
    pub fn kernel_of(&self, domain: &BootDomain) -> Option<&BootModule> {
        self.module(domain.kernel)
    }

    /// A domain's ramdisk module.
    pub fn ramdisk_of(&self, domain: &BootDomain) -> Option<&BootModule> {
        domain.ramdisk.and_then(|i| self.module(i))
    }

    /// The sum of the domains' initial memory, bytes (saturating).
    pub fn total_memory(&self) -> u64 {
        self.domains
            .iter()
            .fold(0u64, |sum, d| sum.saturating_add(d.memory))
    }
}
