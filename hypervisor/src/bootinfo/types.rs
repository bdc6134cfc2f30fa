//! The common structures: what the boot loader handed over ([`BootModule`]),
//! the domains to build ([`BootDomain`]), and both together ([`BootInfo`]).
//!
//! Modelled on Xen's `boot_info` / `boot_module` / `boot_domain`: a domain
//! refers to its modules by index into [`BootInfo::modules`], so a module
//! is described once however it was found.

use std::path::PathBuf;
use std::sync::Arc;

use pvh_bootparams::Compression;

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

/// Where a module's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// Entry N of the boot loader's module list (`module-index` / `mb-index`).
    ModuleIndex(u32),
    /// A file named by `xen,uefi-binary`, resolved under the caller's
    /// directory (the path is the resolved one).
    File(PathBuf),
    /// The boot-loader module placed at `addr` (`reg`).
    Reg {
        /// Load address.
        addr: u64,
        /// Size from `reg`.
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
    pub bytes: Arc<[u8]>,
    /// Its command line: the loader's module string if non-empty, else the
    /// node's `bootargs`, else empty.
    pub cmdline: String,
    /// The compression recognised by magic (of the bzImage payload for a
    /// bzImage), `None` for plain data.
    pub compression: Option<Compression>,
    /// Bytes to keep free below the module so it can be decompressed in
    /// place (output starting at `start - headroom`); see
    /// [`super::compression::headroom`] for the estimate. 0 when not
    /// compressed.
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
    /// A domain's `capabilities` (Xen's `DOMAIN_CAPS_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Capabilities: u32 {
        /// May control other domains.
        const CONTROL = 0x1;
        /// Owns the hardware.
        const HARDWARE = 0x2;
        /// Runs xenstored.
        const XENSTORE = 0x4;
    }
}

/// One domain to build at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDomain {
    /// Domain id: the tree's `domid`, or allocated (lowest free from 1).
    pub domid: u32,
    /// The node name (`domU1`), for messages and console prefixes.
    pub name: String,
    /// Guest type.
    pub mode: DomainMode,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Initial memory, bytes.
    pub memory: u64,
    /// Minimum memory, bytes (`mem-min`, default `memory`).
    pub mem_min: u64,
    /// Maximum memory, bytes (`mem-max`, default `memory`).
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
}

/// Everything needed to build the boot-time domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// Every module found, in tree order.
    pub modules: Vec<BootModule>,
    /// The domains, in tree order.
    pub domains: Vec<BootDomain>,
    /// The host memory limit the caller passed, bytes. Each domain's
    /// `mem_max` and the sum of the domains' `memory` stay within it.
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
