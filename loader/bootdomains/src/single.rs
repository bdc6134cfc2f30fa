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
/// Built with [`CliModule::new`] (or [`CliModule::read`]) and its setters;
/// the fields stay readable and assignable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The module `bytes`, given by `option`: no file, no command line.
    pub fn new(option: &'static str, bytes: Input) -> Self {
        Self {
            option,
            path: None,
            bytes,
            cmdline: String::new(),
        }
    }

    /// The file it was read from.
    #[must_use]
    pub fn path(mut self, path: Option<PathBuf>) -> Self {
        self.path = path;
        self
    }

    /// Its command line.
    #[must_use]
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }

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

/// The `pvh boot` options that describe the guest. Built with
/// [`SingleDomain::new`] and its setters; the fields stay readable and
/// assignable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl SingleDomain {
    /// A guest booting `kernel` with `memory` bytes: no initrd, no modules,
    /// no command line, one vCPU, the default [`DomainBoot`], no host
    /// memory limit, no hypervisor command line, no host memory map.
    pub fn new(kernel: CliModule, memory: u64) -> Self {
        Self {
            kernel,
            initrd: None,
            modules: Vec::new(),
            cmdline: String::new(),
            memory,
            cpus: 1,
            boot: DomainBoot::default(),
            host_memory_limit: u64::MAX,
            hypervisor_cmdline: String::new(),
            host_memmap: Vec::new(),
        }
    }

    /// Boots `kernel` instead.
    #[must_use]
    pub fn kernel(mut self, kernel: CliModule) -> Self {
        self.kernel = kernel;
        self
    }

    /// The initrd (`--initrd`).
    #[must_use]
    pub fn initrd(mut self, initrd: Option<CliModule>) -> Self {
        self.initrd = initrd;
        self
    }

    /// The `--module`s, in order.
    #[must_use]
    pub fn modules(mut self, modules: Vec<CliModule>) -> Self {
        self.modules = modules;
        self
    }

    /// Appends a `--module`.
    #[must_use]
    pub fn module(mut self, module: CliModule) -> Self {
        self.modules.push(module);
        self
    }

    /// The kernel command line (`--cmdline`).
    #[must_use]
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }

    /// Guest memory in bytes (`--memory`).
    #[must_use]
    pub fn memory(mut self, memory: u64) -> Self {
        self.memory = memory;
        self
    }

    /// vCPUs.
    #[must_use]
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Protocol, subarch and ACPI.
    #[must_use]
    pub fn boot(mut self, boot: DomainBoot) -> Self {
        self.boot = boot;
        self
    }

    /// The host memory limit in bytes.
    #[must_use]
    pub fn host_memory_limit(mut self, host_memory_limit: u64) -> Self {
        self.host_memory_limit = host_memory_limit;
        self
    }

    /// pvh's own command line ([`SingleDomain::hypervisor_cmdline`]).
    #[must_use]
    pub fn hypervisor_cmdline(mut self, hypervisor_cmdline: impl Into<String>) -> Self {
        self.hypervisor_cmdline = hypervisor_cmdline.into();
        self
    }

    /// The host memory map ([`SingleDomain::host_memmap`]).
    #[must_use]
    pub fn host_memmap(mut self, host_memmap: Vec<HostMemoryRange>) -> Self {
        self.host_memmap = host_memmap;
        self
    }
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
