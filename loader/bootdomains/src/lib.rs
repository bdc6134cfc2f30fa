//! Boot-time domains for a PVH toolstack: Xen dom0less and hyperlaunch
//! device trees, and a single domain described by options, turned into one
//! [`BootInfo`] (modules + domains), each domain built into a `pvh-loader`
//! configuration and checked whole before anything runs. No hypervisor in
//! here: what the VMM brings (the stub guest for a bzImage booted as PVH,
//! its ACPI platform, its reserved ranges) comes in a [`DomainBuilder`].
//!
//! ```text
//! let sources = BootSources::default().modules(&loader_modules).dir(Some(dir));
//! let info = pvh_bootdomains::parse(&dtb, sources)?;    // one walk, typed errors
//! let builder = DomainBuilder::new().platform(platform).reserve("KVM TSS", tss);
//! let plan = LaunchPlan::new(&info, &builder)?;         // every domain checked
//! let one = BootInfo::single_domain(spec)?;             // same structures for one domain
//! ```
//! The bindings accepted, what each property becomes and every error are
//! in `docs/bootdomains.md`.
//!
//! One file per concern (running the domains is the hypervisor's: `pvh
//! launch` in `pvh-hypervisor`):
//! - [`types`]: `BootInfo`, `BootModule`, `BootDomain` and their parts;
//! - [`blob`]: the structural check that keeps the `fdt` crate from
//!   panicking on a lying blob;
//! - [`parser`]: the single walk over `/chosen`;
//! - [`source`]: where module bytes come from (loader list, directory),
//!   and the `--module` syntax;
//! - [`host`]: the boot loader's name and the host's memory;
//! - [`compression`]: compressed-module detection and headroom;
//! - [`single`]: the one-domain builder for `pvh boot`;
//! - [`build`]: a domain into the loader's configuration, and its check;
//! - [`plan`]: every domain of a tree checked: what `--plan` prints;
//! - [`error`]: the error enums.

pub mod blob;
pub mod build;
pub mod compression;
pub mod error;
pub mod host;
pub mod parser;
pub mod plan;
mod props;
pub mod single;
pub mod source;
pub mod types;

pub use build::{BuildError, Checked, DomainBuilder};
pub use error::{BlobError, BootInfoError, CellCount};
pub use parser::{ParseStats, parse, parse_with_stats};
pub use plan::{DomainError, DomainPlan, LaunchPlan};
pub use single::{CliModule, SingleDomain};
pub use source::{BootSources, DomainDefaults, LoaderModule, ModuleNumbering, ModuleSpec};
pub use types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainBoot, DomainMode, HostMemoryRange,
    ModuleKind, ModuleOrigin, XSM_MAGIC, is_xsm_policy,
};
