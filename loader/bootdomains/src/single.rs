//! The `pvh boot` options as a [`BootInfo`] with one domain, so a single
//! guest and a tree of them are built from the same structures.

use pvh_loader::input::Input;
use std::path::PathBuf;

use super::compression;
use super::error::BootInfoError;
use super::host::LOADER_NAME;
use super::parser::MAX_VCPUS;
use super::types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainBoot, DomainMode, HostMemoryRange,
    ModuleKind, ModuleOrigin, is_xsm_policy,
};

/// What the single domain is called (in messages and console prefixes).
pub const SINGLE_DOMAIN_NAME: &str = "guest";
/// Its domain id: the first one the tree parser would allocate.
pub const SINGLE_DOMAIN_ID: u32 = 1;
/// The "node" of everything that came from the command line.
pub const COMMAND_LINE: &str = "command line";

/// One file (or built-in image) given on the `pvh boot` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliModule {
    /// The option it came from (`--kernel`, `--initrd`, `--module`).
    pub option: &'static str,
    /// The file, if any.
    pub path: Option<PathBuf>,
    /// The bytes.
    pub bytes: Input,
    /// Its command line (the part after the comma of `--module`).
    pub cmdline: String,
}

impl CliModule {
    /// Reads `path` for `option`.
    pub fn read(
        option: &'static str,
        path: PathBuf,
        cmdline: impl Into<String>,
    ) -> Result<Self, BootInfoError> {
        // No limit: the CLI reads its inputs through `Input` with the
        // guest's RAM as the limit and builds `CliModule`s itself.
        let bytes = super::source::open_input(option, &path, u64::MAX)?;
        Ok(Self {
            option,
            path: Some(path),
            bytes,
            cmdline: cmdline.into(),
        })
    }

    /// The module, as `kind`. An XSM policy is never a kernel or ramdisk;
    /// a `--module` that is one is recorded as one (and still given to the
    /// guest, which may be a hypervisor that wants it).
    fn into_module(self, kind: ModuleKind) -> Result<BootModule, BootInfoError> {
        let kind = match (kind, is_xsm_policy(&self.bytes)) {
            (ModuleKind::Kernel | ModuleKind::Ramdisk, true) => {
                return Err(BootInfoError::XsmPolicyAsDomainModule {
                    node: self.option.to_owned(),
                    kind,
                });
            }
            (ModuleKind::Unknown, true) => ModuleKind::XsmPolicy,
            (kind, _) => kind,
        };
        let (compression, headroom) = compression::headroom(&self.bytes);
        Ok(BootModule {
            kind,
            origin: ModuleOrigin::CommandLine {
                option: self.option,
                path: self.path,
            },
            bytes: self.bytes,
            cmdline: self.cmdline,
            compression,
            headroom,
            node: self.option.to_owned(),
        })
    }
}

/// The `pvh boot` options that describe the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleDomain {
    /// `--kernel` (or the built-in probe).
    pub kernel: CliModule,
    /// `--initrd`.
    pub initrd: Option<CliModule>,
    /// `--module`s, in order.
    pub modules: Vec<CliModule>,
    /// `--cmdline`.
    pub cmdline: String,
    /// `--memory`, bytes.
    pub memory: u64,
    /// vCPUs.
    pub cpus: u32,
    /// `--boot-protocol`, `--subarch`, `--no-acpi`.
    pub boot: DomainBoot,
    /// Host memory limit, bytes.
    pub host_memory_limit: u64,
    /// pvh's own command line, for [`BootInfo::cmdline`].
    pub hypervisor_cmdline: String,
    /// The host memory map, for [`BootInfo::host_memmap`].
    pub host_memmap: Vec<HostMemoryRange>,
}

impl BootInfo {
    /// One PVH domain from the `pvh boot` options: modules are the kernel,
    /// then the initrd, then the `--module`s; the kernel's command line is
    /// `--cmdline`.
    pub fn single_domain(spec: SingleDomain) -> Result<BootInfo, BootInfoError> {
        let SingleDomain {
            mut kernel,
            initrd,
            modules,
            cmdline,
            memory,
            cpus,
            boot,
            host_memory_limit,
            hypervisor_cmdline,
            host_memmap,
        } = spec;
        if memory > host_memory_limit {
            return Err(BootInfoError::MemoryOverLimit {
                node: COMMAND_LINE.into(),
                property: "--memory",
                bytes: memory,
                limit: host_memory_limit,
            });
        }
        if cpus == 0 || cpus > MAX_VCPUS {
            return Err(BootInfoError::InvalidValue {
                node: COMMAND_LINE.into(),
                property: "--cpus",
                value: u64::from(cpus),
                reason: "must be between 1 and 32 (the most vCPUs pvh's ACPI tables describe)",
            });
        }
        kernel.cmdline.clone_from(&cmdline);
        let mut all = vec![kernel.into_module(ModuleKind::Kernel)?];
        let ramdisk = match initrd {
            Some(m) => {
                all.push(m.into_module(ModuleKind::Ramdisk)?);
                Some(all.len() - 1)
            }
            None => None,
        };
        let first_extra = all.len();
        for m in modules {
            all.push(m.into_module(ModuleKind::Unknown)?);
        }
        let domain = BootDomain {
            domid: SINGLE_DOMAIN_ID,
            name: SINGLE_DOMAIN_NAME.into(),
            node: COMMAND_LINE.into(),
            mode: DomainMode::Pvh,
            long_mode: false,
            capabilities: Capabilities::empty(),
            memory,
            memory_asked: memory,
            mem_min: memory,
            mem_max: memory,
            vcpus: cpus,
            kernel: 0,
            ramdisk,
            extra_modules: (first_extra..all.len()).collect(),
            cmdline,
            boot,
        };
        Ok(BootInfo {
            loader_name: LOADER_NAME.into(),
            cmdline: hypervisor_cmdline,
            host_memmap,
            modules: all,
            domains: vec![domain],
            host_memory_limit,
        })
    }
}
