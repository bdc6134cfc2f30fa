//! The Linux x86 boot protocol, byte-exact: `boot_params` (the "zero page"),
//! `setup_header`, e820 entries and `setup_data` nodes.
//!
//! Every structure here is `#[repr(C)]` (packed where the C header is packed),
//! derives zerocopy's `FromBytes`, `IntoBytes`, `KnownLayout` and `Immutable`,
//! and carries a compile-time assertion of its size and of every field's
//! offset. The offsets are checked again against Linux's
//! `<asm/bootparam.h>` by a test that compiles C (`tests/` at the workspace
//! root).
//!
//! The packed structures (`BootParams`, `SetupHeader`, `E820Entry`) cannot
//! hand out references to their fields: read a field by value, e.g.
//! `let v = { hdr.version };` or `assert_eq!({ hdr.version }, 0x20f)`.
//!
//! Values that come from guest or image bytes and have a closed set of known
//! meanings (e820 types, the hardware subarch, setup_data types) are `u32`
//! newtypes with named constants, never Rust enums: an unknown value must be
//! representable, not undefined behaviour or a panic.
//!
//! Sources: Linux `arch/x86/include/uapi/asm/bootparam.h`,
//! `arch/x86/include/uapi/asm/setup_data.h`, `Documentation/arch/x86/boot.rst`
//! and `zero-page.rst`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "synth")]
extern crate alloc;

mod boot_params;
mod e820;
mod flags;
mod image;
mod setup_data;
mod setup_header;
#[cfg(feature = "synth")]
pub mod synth;

pub use boot_params::{BootParams, E820_MAX_ENTRIES_ZEROPAGE, ZERO_PAGE_SIZE};
pub use e820::{E820Entry, E820Type};
pub use flags::{HardwareSubarch, LoadFlags, XLoadFlags};
pub use image::{BzImage, Compression, ImageError};
pub use setup_data::{SetupData, SetupDataType};
pub use setup_header::{
    BOOT_FLAG, HDRS_MAGIC, LOADER_TYPE_UNDEFINED, SETUP_HEADER_OFFSET, SetupHeader,
};
