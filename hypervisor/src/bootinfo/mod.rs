//! Boot-time domains: Xen dom0less and hyperlaunch device trees, and the
//! `pvh boot` options, turned into one [`BootInfo`] (modules + domains).
//!
//! ```text
//! let sources = BootSources { modules: &loader_modules, dir: Some(dir), host_memory_limit };
//! let info = bootinfo::parse(&dtb, sources)?;           // one walk, typed errors
//! for d in &info.domains { let kernel = info.kernel_of(d); ... }
//! let one = BootInfo::single_domain(spec)?;             // same structures for `pvh boot`
//! ```
//! The bindings accepted and every error are in `docs/bootdomains.md`.
//!
//! One file per concern:
//! - [`types`]: `BootInfo`, `BootModule`, `BootDomain` and their parts;
//! - [`blob`]: the structural check that keeps the `fdt` crate from
//!   panicking on a lying blob;
//! - [`parser`]: the single walk over `/chosen`;
//! - [`source`]: where module bytes come from (loader list, directory);
//! - [`compression`]: compressed-module detection and headroom;
//! - [`single`]: the one-domain builder for `pvh boot`;
//! - [`launch`]: `pvh launch`, every domain in its own KVM VM;
//! - [`error`]: the error enums.

pub mod blob;
pub mod build;
pub mod compression;
pub mod error;
pub mod launch;
pub mod parser;
mod props;
pub mod single;
pub mod source;
pub mod types;

pub use error::{BlobError, BootInfoError};
pub use parser::{ParseStats, parse, parse_with_stats};
pub use single::{CliModule, SingleDomain};
pub use source::{BootSources, LoaderModule, ModuleArg};
pub use types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainMode, ModuleKind, ModuleOrigin,
};
