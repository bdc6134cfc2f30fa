//! `struct setup_data`: the header of a node in the zero page's singly linked
//! `setup_data` list (`setup_header.setup_data`).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The type of a `setup_data` node. A newtype: unknown values are legal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(transparent)]
pub struct SetupDataType(pub u32);

impl SetupDataType {
    /// No data.
    pub const NONE: Self = Self(0);
    /// More e820 entries than the zero page's 128 (`[E820Entry]` payload).
    pub const E820_EXT: Self = Self(1);
    /// A flattened device tree.
    pub const DTB: Self = Self(2);
    /// PCI option ROMs.
    pub const PCI: Self = Self(3);
    /// EFI setup data.
    pub const EFI: Self = Self(4);
    /// Apple device properties.
    pub const APPLE_PROPERTIES: Self = Self(5);
    /// Jailhouse.
    pub const JAILHOUSE: Self = Self(6);
    /// Confidential-computing blob.
    pub const CC_BLOB: Self = Self(7);
    /// IMA measurement log.
    pub const IMA: Self = Self(8);
    /// RNG seed.
    pub const RNG_SEED: Self = Self(9);
    /// Flag: the payload is a `setup_indirect` pointing elsewhere.
    pub const INDIRECT: u32 = 1 << 31;
}

/// `struct setup_data` without its flexible `data[]` tail (16 bytes). The
/// payload of `len` bytes follows the header directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SetupData {
    /// Physical address of the next node, 0 at the end of the list.
    pub next: u64,
    /// What the payload is (C name: `type`).
    pub type_: SetupDataType,
    /// Payload length in bytes.
    pub len: u32,
}

const _: () = {
    assert!(size_of::<SetupData>() == 16);
    assert!(offset_of!(SetupData, next) == 0);
    assert!(offset_of!(SetupData, type_) == 8);
    assert!(offset_of!(SetupData, len) == 12);
};
