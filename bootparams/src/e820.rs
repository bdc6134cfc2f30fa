//! `struct boot_e820_entry`: one range of the BIOS-style memory map.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// An e820 range type. A newtype with named constants: any `u32` can appear
/// in guest memory and must be carried, not rejected.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
#[repr(transparent)]
pub struct E820Type(pub u32);

impl E820Type {
    /// Usable RAM.
    pub const RAM: Self = Self(1);
    /// Reserved: not RAM the kernel may use.
    pub const RESERVED: Self = Self(2);
    /// ACPI tables, reclaimable after they are parsed.
    pub const ACPI: Self = Self(3);
    /// ACPI non-volatile storage.
    pub const NVS: Self = Self(4);
    /// Unusable (errors detected).
    pub const UNUSABLE: Self = Self(5);
    /// Persistent memory.
    pub const PMEM: Self = Self(7);
    /// Legacy persistent memory (Linux's type 12).
    pub const PRAM: Self = Self(12);
    /// "Soft reserved" (EFI specific-purpose memory).
    pub const SOFT_RESERVED: Self = Self(0xefff_ffff);

    /// A short name for a known type.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::RAM => "ram",
            Self::RESERVED => "reserved",
            Self::ACPI => "acpi",
            Self::NVS => "nvs",
            Self::UNUSABLE => "unusable",
            Self::PMEM => "pmem",
            Self::PRAM => "pram",
            Self::SOFT_RESERVED => "soft-reserved",
            _ => return None,
        })
    }
}

/// `struct boot_e820_entry` (packed, 20 bytes): `{u64 addr, u64 size, u32 type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Start of the range.
    pub addr: u64,
    /// Length of the range in bytes.
    pub size: u64,
    /// What the range is (C name: `type`).
    pub type_: E820Type,
}

const _: () = {
    assert!(size_of::<E820Entry>() == 20);
    assert!(offset_of!(E820Entry, addr) == 0);
    assert!(offset_of!(E820Entry, size) == 8);
    assert!(offset_of!(E820Entry, type_) == 16);
};

impl E820Entry {
    /// A new entry.
    pub const fn new(addr: u64, size: u64, type_: E820Type) -> Self {
        Self { addr, size, type_ }
    }

    /// One past the last byte, or `None` if the range wraps past 2^64.
    pub fn end(&self) -> Option<u64> {
        let (addr, size) = (self.addr, self.size);
        addr.checked_add(size)
    }
}
