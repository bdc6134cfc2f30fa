//! `struct hvm_start_info` and its tables, byte-exact.
//!
//! Source: Xen `xen/include/public/arch-x86/hvm/start_info.h`,
//! SIF flags from `xen/include/public/xen.h`.

use bitflags::bitflags;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with bit 7 of the 'E' set.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of a version-0 start_info (everything before `memmap_paddr`).
pub const START_INFO_V0_SIZE: usize = 48;
/// Size of a version-1 start_info.
pub const START_INFO_V1_SIZE: usize = 56;

/// `struct hvm_start_info` (version 1 layout, 56 bytes). A version-0 reader
/// sees only the first [`START_INFO_V0_SIZE`] bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct StartInfo {
    /// [`START_INFO_MAGIC`].
    pub magic: u32,
    /// 0 or 1; later versions only append.
    pub version: u32,
    /// [`SifFlags`] bits.
    pub flags: u32,
    /// Entries in the module list.
    pub nr_modules: u32,
    /// Physical address of `[ModlistEntry; nr_modules]`, 0 if none.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, 0 if none.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, 0 if none.
    pub rsdp_paddr: u64,
    /// Physical address of `[MemmapEntry; memmap_entries]` (version 1+).
    pub memmap_paddr: u64,
    /// Entries in the memory map; 0 means "no map here" (version 1+).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_modlist_entry` (32 bytes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Physical address of the module's NUL-terminated command line, 0 if none.
    pub cmdline_paddr: u64,
    /// Must be zero.
    pub reserved: u64,
}

/// `struct hvm_memmap_table_entry` (24 bytes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MemmapEntry {
    /// Start of the range.
    pub addr: u64,
    /// Length of the range in bytes.
    pub size: u64,
    /// What the range is (C name: `type`).
    pub type_: MemmapType,
    /// Must be zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<StartInfo>() == START_INFO_V1_SIZE);
    assert!(offset_of!(StartInfo, magic) == 0);
    assert!(offset_of!(StartInfo, version) == 4);
    assert!(offset_of!(StartInfo, flags) == 8);
    assert!(offset_of!(StartInfo, nr_modules) == 12);
    assert!(offset_of!(StartInfo, modlist_paddr) == 16);
    assert!(offset_of!(StartInfo, cmdline_paddr) == 24);
    assert!(offset_of!(StartInfo, rsdp_paddr) == 32);
    assert!(offset_of!(StartInfo, memmap_paddr) == 40);
    assert!(offset_of!(StartInfo, memmap_entries) == 48);
    assert!(offset_of!(StartInfo, reserved) == 52);
    assert!(offset_of!(StartInfo, memmap_paddr) == START_INFO_V0_SIZE - 8);

    assert!(size_of::<ModlistEntry>() == 32);
    assert!(offset_of!(ModlistEntry, paddr) == 0);
    assert!(offset_of!(ModlistEntry, size) == 8);
    assert!(offset_of!(ModlistEntry, cmdline_paddr) == 16);
    assert!(offset_of!(ModlistEntry, reserved) == 24);

    assert!(size_of::<MemmapEntry>() == 24);
    assert!(offset_of!(MemmapEntry, addr) == 0);
    assert!(offset_of!(MemmapEntry, size) == 8);
    assert!(offset_of!(MemmapEntry, type_) == 16);
    assert!(offset_of!(MemmapEntry, reserved) == 20);
};

impl StartInfo {
    /// The typed flags (unknown bits kept).
    pub fn sif_flags(&self) -> SifFlags {
        SifFlags::from_bits_retain(self.flags)
    }
}

impl MemmapEntry {
    /// A new entry.
    pub const fn new(addr: u64, size: u64, type_: MemmapType) -> Self {
        Self {
            addr,
            size,
            type_,
            reserved: 0,
        }
    }

    /// One past the last byte, or `None` if the range wraps past 2^64.
    pub fn end(&self) -> Option<u64> {
        self.addr.checked_add(self.size)
    }
}

/// A memory-map range type (ACPI address range types, plus Xen's OEM ones).
/// A newtype: unknown values are carried, never rejected.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
#[repr(transparent)]
pub struct MemmapType(pub u32);

impl MemmapType {
    /// Usable RAM.
    pub const RAM: Self = Self(1);
    /// Reserved.
    pub const RESERVED: Self = Self(2);
    /// ACPI reclaimable.
    pub const ACPI: Self = Self(3);
    /// ACPI non-volatile storage.
    pub const NVS: Self = Self(4);
    /// Unusable.
    pub const UNUSABLE: Self = Self(5);
    /// Disabled.
    pub const DISABLED: Self = Self(6);
    /// Persistent memory.
    pub const PMEM: Self = Self(7);
    /// First of Xen's OEM types (`XEN_HVM_MEMMAP_TYPE_*` 0xF0000001..4).
    pub const OEM_FIRST: Self = Self(0xf000_0001);
    /// Last of Xen's OEM types.
    pub const OEM_LAST: Self = Self(0xf000_0004);

    /// A short name for a known type.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::RAM => "ram",
            Self::RESERVED => "reserved",
            Self::ACPI => "acpi",
            Self::NVS => "nvs",
            Self::UNUSABLE => "unusable",
            Self::DISABLED => "disabled",
            Self::PMEM => "pmem",
            t if t >= Self::OEM_FIRST && t <= Self::OEM_LAST => "oem",
            _ => return None,
        })
    }
}

bitflags! {
    /// `hvm_start_info.flags` (Xen's `SIF_*`). Unknown bits are kept:
    /// newer Xen versions define more.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SifFlags: u32 {
        /// The domain is privileged.
        const PRIVILEGED = 1 << 0;
        /// The domain is the initial domain.
        const INITDOMAIN = 1 << 1;
        /// Modules are multiboot modules.
        const MULTIBOOT_MOD = 1 << 2;
        /// Module start is a PFN, not an address.
        const MOD_START_PFN = 1 << 3;
        /// The p2m is set up for the tools.
        const VIRT_P2M_4TOOLS = 1 << 4;
        /// Power-management bits (8 to 15).
        const PM_MASK = 0xff << 8;
        const _ = !0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_spells_xen3() {
        let mut bytes = START_INFO_MAGIC.to_le_bytes();
        bytes[1] &= 0x7f;
        assert_eq!(&bytes, b"xEn3");
    }

    #[test]
    fn unknown_flags_and_types_are_kept() {
        let info = StartInfo {
            flags: 0x8000_0003,
            ..Default::default()
        };
        let f = info.sif_flags();
        assert!(f.contains(SifFlags::PRIVILEGED | SifFlags::INITDOMAIN));
        assert_eq!(f.bits(), 0x8000_0003);
        assert_eq!(MemmapType(0xf000_0002).name(), Some("oem"));
        assert_eq!(MemmapType(99).name(), None);
    }
}
