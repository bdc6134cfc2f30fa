//! Boot-time domains: Xen dom0less and hyperlaunch device trees, and the
//! `pvh boot` options, turned into one [`BootInfo`] (modules + domains),
//! checked whole, then built and run.
//!
//! ```text
//! let sources = BootSources { modules: &loader_modules, dir: Some(dir), ..Default::default() };
//! let info = bootinfo::parse(&dtb, sources)?;           // one walk, typed errors
//! let plan = LaunchPlan::new(&info)?;                   // every domain checked
//! let one = BootInfo::single_domain(spec)?;             // same structures for `pvh boot`
//! ```
//! The bindings accepted, what each property becomes and every error are
//! in `docs/bootdomains.md`.
//!
//! One file per concern (none of them needs KVM except [`launch`], which
//! runs the domains):
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
//! - [`launch`]: `pvh launch`, every domain in its own KVM VM;
//! - [`error`]: the error enums.

pub mod blob;
pub mod build;
pub mod compression;
pub mod error;
pub mod host;
pub mod launch;
pub mod parser;
pub mod plan;
mod props;
pub mod single;
pub mod source;
pub mod types;

pub use error::{BlobError, BootInfoError, CellCount};
pub use parser::{ParseStats, parse, parse_with_stats};
pub use plan::{DomainPlan, LaunchPlan};
pub use single::{CliModule, SingleDomain};
pub use source::{BootSources, DomainDefaults, LoaderModule, ModuleNumbering, ModuleSpec};
pub use types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainBoot, DomainMode, HostMemoryRange,
    ModuleKind, ModuleOrigin, XSM_MAGIC, is_xsm_policy,
};
