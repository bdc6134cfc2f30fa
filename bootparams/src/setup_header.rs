//! `struct setup_header`: the part of the zero page the kernel image itself
//! carries at file offset 0x1f1 and the boot loader fills in.

use crate::flags::{HardwareSubarch, LoadFlags, XLoadFlags};
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Offset of the setup header inside both the zero page and the bzImage.
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// `setup_header.header`: "HdrS" read as a little-endian `u32`.
pub const HDRS_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// `setup_header.boot_flag`: the legacy boot-sector signature.
pub const BOOT_FLAG: u16 = 0xaa55;
/// `type_of_loader` for a boot loader with no assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;

/// `struct setup_header` (packed, 123 bytes; lives at 0x1f1 in the zero page).
///
/// Field names follow the C header so that the offsets can be compared
/// mechanically. Multi-byte fields are little-endian on the only
/// architecture this describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed)]
pub struct SetupHeader {
    /// Size of the setup code in 512-byte sectors; 0 means 4.
    pub setup_sects: u8,
    /// Obsolete: mount root read-only.
    pub root_flags: u16,
    /// Size of the protected-mode code in 16-byte paragraphs.
    pub syssize: u32,
    /// Obsolete.
    pub ram_size: u16,
    /// Video mode.
    pub vid_mode: u16,
    /// Default root device.
    pub root_dev: u16,
    /// 0xAA55.
    pub boot_flag: u16,
    /// x86 jump instruction over the header.
    pub jump: u16,
    /// "HdrS".
    pub header: u32,
    /// Boot protocol version, major in the high byte.
    pub version: u16,
    /// Real-mode switch hook.
    pub realmode_swtch: u32,
    /// Obsolete.
    pub start_sys_seg: u16,
    /// Pointer to the kernel version string (relative to 0x200).
    pub kernel_version: u16,
    /// Boot loader identifier.
    pub type_of_loader: u8,
    /// See [`LoadFlags`].
    pub loadflags: u8,
    /// Obsolete.
    pub setup_move_size: u16,
    /// 32-bit entry address (protocol 2.00+).
    pub code32_start: u32,
    /// Initrd address, low 32 bits.
    pub ramdisk_image: u32,
    /// Initrd size, low 32 bits.
    pub ramdisk_size: u32,
    /// Obsolete.
    pub bootsect_kludge: u32,
    /// End of the setup heap.
    pub heap_end_ptr: u16,
    /// Extended boot loader version.
    pub ext_loader_ver: u8,
    /// Extended boot loader type.
    pub ext_loader_type: u8,
    /// Command line address, low 32 bits.
    pub cmd_line_ptr: u32,
    /// Highest address the initrd may occupy.
    pub initrd_addr_max: u32,
    /// Required alignment of a relocatable kernel.
    pub kernel_alignment: u32,
    /// Non-zero if the kernel is relocatable.
    pub relocatable_kernel: u8,
    /// log2 of the minimum alignment.
    pub min_alignment: u8,
    /// See [`XLoadFlags`].
    pub xloadflags: u16,
    /// Longest command line, without the terminating NUL.
    pub cmdline_size: u32,
    /// See [`HardwareSubarch`].
    pub hardware_subarch: HardwareSubarch,
    /// Subarch-specific data.
    pub hardware_subarch_data: u64,
    /// Offset of the compressed payload from the protected-mode code.
    pub payload_offset: u32,
    /// Length of the compressed payload.
    pub payload_length: u32,
    /// Physical address of the first `setup_data` node.
    pub setup_data: u64,
    /// Preferred load address of a relocatable kernel.
    pub pref_address: u64,
    /// Linear memory the kernel needs from its load address.
    pub init_size: u32,
    /// EFI handover entry offset.
    pub handover_offset: u32,
    /// Offset of `kernel_info` from the protected-mode code.
    pub kernel_info_offset: u32,
}

/// Offsets are asserted relative to the zero page (as the C header comments
/// give them), i.e. `SETUP_HEADER_OFFSET + offset_of!(SetupHeader, field)`.
macro_rules! assert_hdr_offsets {
    ($($field:ident @ $off:expr),* $(,)?) => {
        const _: () = { $(assert!(SETUP_HEADER_OFFSET + offset_of!(SetupHeader, $field) == $off);)* };
    };
}

const _: () = assert!(size_of::<SetupHeader>() == 0x26c - SETUP_HEADER_OFFSET);
assert_hdr_offsets!(
    setup_sects @ 0x1f1, root_flags @ 0x1f2, syssize @ 0x1f4, ram_size @ 0x1f8,
    vid_mode @ 0x1fa, root_dev @ 0x1fc, boot_flag @ 0x1fe, jump @ 0x200,
    header @ 0x202, version @ 0x206, realmode_swtch @ 0x208, start_sys_seg @ 0x20c,
    kernel_version @ 0x20e, type_of_loader @ 0x210, loadflags @ 0x211,
    setup_move_size @ 0x212, code32_start @ 0x214, ramdisk_image @ 0x218,
    ramdisk_size @ 0x21c, bootsect_kludge @ 0x220, heap_end_ptr @ 0x224,
    ext_loader_ver @ 0x226, ext_loader_type @ 0x227, cmd_line_ptr @ 0x228,
    initrd_addr_max @ 0x22c, kernel_alignment @ 0x230, relocatable_kernel @ 0x234,
    min_alignment @ 0x235, xloadflags @ 0x236, cmdline_size @ 0x238,
    hardware_subarch @ 0x23c, hardware_subarch_data @ 0x240, payload_offset @ 0x248,
    payload_length @ 0x24c, setup_data @ 0x250, pref_address @ 0x258,
    init_size @ 0x260, handover_offset @ 0x264, kernel_info_offset @ 0x268,
);

impl SetupHeader {
    /// `loadflags` as typed flags (unknown bits kept).
    pub fn load_flags(&self) -> LoadFlags {
        LoadFlags::from_bits_retain(self.loadflags)
    }

    /// `xloadflags` as typed flags (unknown bits kept).
    pub fn xload_flags(&self) -> XLoadFlags {
        XLoadFlags::from_bits_retain(self.xloadflags)
    }

    /// Number of 512-byte setup sectors, with the legacy "0 means 4" rule.
    pub fn setup_sectors(&self) -> u32 {
        match self.setup_sects {
            0 => 4,
            n => u32::from(n),
        }
    }

    /// The protocol version as `(major, minor)`.
    pub fn protocol(&self) -> (u8, u8) {
        let v = self.version;
        ((v >> 8) as u8, v as u8)
    }
}
