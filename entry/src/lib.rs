//! The x86 PVH boot ABI, in one place.
//!
//! - [`start_info`]: `hvm_start_info` (versions 0 and 1), the module list
//!   and the memory map, byte-exact, with zerocopy derives and offset
//!   assertions checked against Xen's `arch-x86/hvm/start_info.h`.
//! - [`elfnote`]: the Xen ELF notes that make an image PVH-bootable.
//! - [`memory`]: the small "bytes at a guest-physical address" traits the
//!   rest is written against, with implementations for a byte slice, for
//!   identity-mapped physical memory (guests) and for rust-vmm `vm-memory`
//!   (feature `vm-memory`).
//! - [`reader`]: a validating reader of a start_info in memory.
//! - [`writer`]: the only code in the workspace that writes start_info bytes.
//! - [`zeropage`]: the translation from a start_info to a Linux zero page.
//! - [`linux`]: the one Linux 64-bit boot policy: what a bzImage needs,
//!   where the kernel, zero page and initrd go, how the zero page is
//!   finished, and the stub's whole decision ([`linux::stub`]), for the
//!   guest stub and the host loader alike.
//! - [`payload`]: the header `pvh wrap` embeds in the zero-page stub.
//! - [`machine`]: the machine contract: every guest-physical address, I/O
//!   port, entry offset and boot GDT guest and host code share.
//! - [`paging`]: the one identity page-table builder.
//! - [`acpi`]: the RSDP and the ACPI tables a hypervisor passes.
//! - [`conformance`]: every rule of the PVH hand-off as a named check.
//! - [`e820`]: a memory map in canonical form, for placement decisions.
//! - [`text`]: escaping input and guest bytes for printing.
//!
//! The crate is `no_std` and needs no allocator unless the `alloc` feature
//! is on; its logic is tested on the host.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod acpi;
pub mod conformance;
pub mod e820;
pub mod elfnote;
pub mod linux;
pub mod machine;
pub mod memory;
pub mod paging;
pub mod payload;
pub mod reader;
#[cfg(feature = "rt")]
pub mod rt;
pub mod start_info;
pub mod text;
pub mod writer;
pub mod zeropage;

pub use memory::{IdentityMapped, OutOfRange, PhysBytes, PhysRead, PhysWrite, SliceMemory};
pub use reader::{Limits, Module, ReadError, StartInfoView, Which};
pub use start_info::{
    MemmapEntry, MemmapType, ModlistEntry, START_INFO_MAGIC, SifFlags, StartInfo,
};
pub use writer::{Limited, ModuleSpec, Placement, StartInfoSpec, WriteError, write_start_info};
pub use zeropage::{
    InitrdChoice, SubarchPolicy, TranslateError, TranslateOptions, Translation, translate,
};

#[cfg(feature = "vm-memory")]
pub use memory::VmMemory;
#[cfg(feature = "alloc")]
pub use reader::{OwnedModule, OwnedStartInfo};
#[cfg(feature = "alloc")]
pub use zeropage::{ZeroPage, translate_owned};

/// Re-export of the zero-page crate, so users of the translation need one
/// dependency.
pub use pvh_bootparams as bootparams;
