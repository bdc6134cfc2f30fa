//! Bit flags and small enumerations of the setup header.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

bitflags! {
    /// `setup_header.loadflags` (offset 0x211).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct LoadFlags: u8 {
        /// The protected-mode code is loaded at 0x100000.
        const LOADED_HIGH = 1 << 0;
        /// Set by the kernel's decompressor when KASLR was used.
        const KASLR_FLAG = 1 << 1;
        /// Suppress early messages.
        const QUIET_FLAG = 1 << 5;
        /// Do not reload segment registers in the 32-bit entry (obsolete).
        const KEEP_SEGMENTS = 1 << 6;
        /// `heap_end_ptr` is valid.
        const CAN_USE_HEAP = 1 << 7;
        // Keep bits this crate does not name: the kernel may define more.
        const _ = !0;
    }
}

bitflags! {
    /// `setup_header.xloadflags` (offset 0x236, protocol 2.12+).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct XLoadFlags: u16 {
        /// The kernel has the legacy 64-bit entry point at 0x200.
        const KERNEL_64 = 1 << 0;
        /// Kernel, boot_params, cmdline and ramdisk may live above 4 GiB.
        const CAN_BE_LOADED_ABOVE_4G = 1 << 1;
        /// 32-bit EFI handover entry.
        const EFI_HANDOVER_32 = 1 << 2;
        /// 64-bit EFI handover entry.
        const EFI_HANDOVER_64 = 1 << 3;
        /// EFI kexec support.
        const EFI_KEXEC = 1 << 4;
        /// The kernel supports 5-level paging.
        const FIVE_LEVEL = 1 << 5;
        /// 5-level paging is enabled in the kernel.
        const FIVE_LEVEL_ENABLED = 1 << 6;
        // Keep bits this crate does not name.
        const _ = !0;
    }
}

/// `setup_header.hardware_subarch` (offset 0x23c): which x86 sub-platform
/// the kernel is booting on. A newtype, not an enum, because the value comes
/// from guest bytes and may be anything.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(transparent)]
pub struct HardwareSubarch(pub u32);

impl HardwareSubarch {
    /// A normal x86 PC (also what Linux's own PVH entry leaves in place).
    pub const PC: Self = Self(0);
    /// lguest (removed from Linux).
    pub const LGUEST: Self = Self(1);
    /// Xen PV; with PVH, pvh's opt-in policy that lets a guest find the
    /// original start_info through `hardware_subarch_data`.
    pub const XEN: Self = Self(2);
    /// Intel MID (Moorestown and successors).
    pub const INTEL_MID: Self = Self(3);
    /// Intel CE4100.
    pub const CE4100: Self = Self(4);

    /// A short name for a known value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::PC => "pc",
            Self::LGUEST => "lguest",
            Self::XEN => "xen",
            Self::INTEL_MID => "intel-mid",
            Self::CE4100 => "ce4100",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_survive() {
        assert_eq!(LoadFlags::from_bits_retain(0x1c).bits(), 0x1c);
        assert_eq!(XLoadFlags::from_bits_retain(0xff80).bits(), 0xff80);
        assert!(XLoadFlags::from_bits_retain(3).contains(XLoadFlags::KERNEL_64));
    }

    #[test]
    fn subarch_names() {
        assert_eq!(HardwareSubarch::XEN.name(), Some("xen"));
        assert_eq!(HardwareSubarch(77).name(), None);
    }
}
