//! `struct boot_params`: the 4 KiB "zero page".

use crate::e820::E820Entry;
use crate::setup_header::SetupHeader;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Size of the zero page.
pub const ZERO_PAGE_SIZE: usize = 4096;
/// Entries of `e820_table` that fit in the zero page; more go into a
/// `SETUP_E820_EXT` setup_data node.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;

/// `struct boot_params` (packed, 4096 bytes).
///
/// Sub-structures the boot paths of this workspace never interpret
/// (`screen_info`, `apm_bios_info`, `edid_info`, `efi_info`, `eddbuf`, ...)
/// are kept as byte arrays of their exact size, so the layout stays exact
/// without describing firmware interfaces nobody here fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed)]
pub struct BootParams {
    /// `struct screen_info` (64 bytes).
    pub screen_info: [u8; 0x40],
    /// `struct apm_bios_info` (20 bytes).
    pub apm_bios_info: [u8; 0x14],
    /// Padding.
    pub _pad2: [u8; 4],
    /// Intel TXT boot address.
    pub tboot_addr: u64,
    /// `struct ist_info` (16 bytes).
    pub ist_info: [u8; 0x10],
    /// Physical address of the ACPI RSDP (protocol 2.14+).
    pub acpi_rsdp_addr: u64,
    /// Padding.
    pub _pad3: [u8; 8],
    /// Obsolete.
    pub hd0_info: [u8; 16],
    /// Obsolete.
    pub hd1_info: [u8; 16],
    /// `struct sys_desc_table` (obsolete, 16 bytes).
    pub sys_desc_table: [u8; 0x10],
    /// `struct olpc_ofw_header` (16 bytes).
    pub olpc_ofw_header: [u8; 0x10],
    /// Initrd address, high 32 bits.
    pub ext_ramdisk_image: u32,
    /// Initrd size, high 32 bits.
    pub ext_ramdisk_size: u32,
    /// Command line address, high 32 bits.
    pub ext_cmd_line_ptr: u32,
    /// Padding.
    pub _pad4: [u8; 112],
    /// Confidential-computing blob address.
    pub cc_blob_address: u32,
    /// `struct edid_info` (128 bytes).
    pub edid_info: [u8; 0x80],
    /// `struct efi_info` (32 bytes).
    pub efi_info: [u8; 0x20],
    /// Alternative memory size in KiB.
    pub alt_mem_k: u32,
    /// Scratch field for the kernel's setup code.
    pub scratch: u32,
    /// Valid entries in `e820_table`.
    pub e820_entries: u8,
    /// Valid entries in `eddbuf`.
    pub eddbuf_entries: u8,
    /// Valid entries in `edd_mbr_sig_buffer`.
    pub edd_mbr_sig_buf_entries: u8,
    /// Keyboard status.
    pub kbd_status: u8,
    /// Secure boot state.
    pub secure_boot: u8,
    /// Padding.
    pub _pad5: [u8; 2],
    /// Must stay 0: if non-zero the kernel assumes a loader that did not
    /// clear the page and wipes most fields (`sanitize_boot_params`).
    pub sentinel: u8,
    /// Padding.
    pub _pad6: [u8; 1],
    /// The setup header.
    pub hdr: SetupHeader,
    /// Padding up to 0x290.
    pub _pad7: [u8; 0x290 - 0x1f1 - size_of::<SetupHeader>()],
    /// MBR signatures of the EDD disks.
    pub edd_mbr_sig_buffer: [u32; 16],
    /// The first 128 e820 entries.
    pub e820_table: [E820Entry; E820_MAX_ENTRIES_ZEROPAGE],
    /// Padding.
    pub _pad8: [u8; 48],
    /// `struct edd_info eddbuf[6]` (82 bytes each).
    pub eddbuf: [u8; 6 * 82],
    /// Padding.
    pub _pad9: [u8; 276],
}

macro_rules! assert_offsets {
    ($($field:ident @ $off:expr),* $(,)?) => {
        const _: () = { $(assert!(offset_of!(BootParams, $field) == $off);)* };
    };
}

const _: () = assert!(size_of::<BootParams>() == ZERO_PAGE_SIZE);
assert_offsets!(
    screen_info @ 0x000, apm_bios_info @ 0x040, _pad2 @ 0x054, tboot_addr @ 0x058,
    ist_info @ 0x060, acpi_rsdp_addr @ 0x070, _pad3 @ 0x078, hd0_info @ 0x080,
    hd1_info @ 0x090, sys_desc_table @ 0x0a0, olpc_ofw_header @ 0x0b0,
    ext_ramdisk_image @ 0x0c0, ext_ramdisk_size @ 0x0c4, ext_cmd_line_ptr @ 0x0c8,
    _pad4 @ 0x0cc, cc_blob_address @ 0x13c, edid_info @ 0x140, efi_info @ 0x1c0,
    alt_mem_k @ 0x1e0, scratch @ 0x1e4, e820_entries @ 0x1e8, eddbuf_entries @ 0x1e9,
    edd_mbr_sig_buf_entries @ 0x1ea, kbd_status @ 0x1eb, secure_boot @ 0x1ec,
    _pad5 @ 0x1ed, sentinel @ 0x1ef, _pad6 @ 0x1f0, hdr @ 0x1f1, _pad7 @ 0x26c,
    edd_mbr_sig_buffer @ 0x290, e820_table @ 0x2d0, _pad8 @ 0xcd0, eddbuf @ 0xd00,
    _pad9 @ 0xeec,
);

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

fn split(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

impl BootParams {
    /// An all-zero zero page, as the boot protocol requires a loader to
    /// start from.
    pub fn zeroed() -> Self {
        Self::new_zeroed()
    }

    /// The command line address: `cmd_line_ptr` plus `ext_cmd_line_ptr`.
    pub fn cmd_line_ptr(&self) -> u64 {
        join(self.hdr.cmd_line_ptr, self.ext_cmd_line_ptr)
    }

    /// Sets both halves of the command line address.
    pub fn set_cmd_line_ptr(&mut self, addr: u64) {
        (self.hdr.cmd_line_ptr, self.ext_cmd_line_ptr) = split(addr);
    }

    /// The initrd address: `ramdisk_image` plus `ext_ramdisk_image`.
    pub fn ramdisk_image(&self) -> u64 {
        join(self.hdr.ramdisk_image, self.ext_ramdisk_image)
    }

    /// The initrd size: `ramdisk_size` plus `ext_ramdisk_size`.
    pub fn ramdisk_size(&self) -> u64 {
        join(self.hdr.ramdisk_size, self.ext_ramdisk_size)
    }

    /// Sets both halves of the initrd address and size.
    pub fn set_ramdisk(&mut self, addr: u64, size: u64) {
        (self.hdr.ramdisk_image, self.ext_ramdisk_image) = split(addr);
        (self.hdr.ramdisk_size, self.ext_ramdisk_size) = split(size);
    }

    /// The valid e820 entries in the zero page (at most 128, whatever
    /// `e820_entries` claims).
    pub fn e820(&self) -> &[E820Entry] {
        let n = usize::from(self.e820_entries).min(E820_MAX_ENTRIES_ZEROPAGE);
        let table = &self.e820_table;
        table.get(..n).unwrap_or(&[])
    }

    /// The zero page as its 4096 bytes.
    pub fn as_page(&self) -> &[u8; ZERO_PAGE_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    /// Reads a zero page from its 4096 bytes.
    pub fn from_page(page: &[u8; ZERO_PAGE_SIZE]) -> Self {
        zerocopy::transmute!(*page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::E820Type;

    #[test]
    fn split_pointers_round_trip() {
        let mut bp = BootParams::zeroed();
        bp.set_cmd_line_ptr(0x1_2345_6789);
        assert_eq!({ bp.hdr.cmd_line_ptr }, 0x2345_6789);
        assert_eq!({ bp.ext_cmd_line_ptr }, 1);
        assert_eq!(bp.cmd_line_ptr(), 0x1_2345_6789);
        bp.set_ramdisk(0xff_0000_1000, 0x2_0000_0001);
        assert_eq!(bp.ramdisk_image(), 0xff_0000_1000);
        assert_eq!(bp.ramdisk_size(), 0x2_0000_0001);
        let page = bp.as_page();
        assert_eq!(&page[0xc0..0xc4], &0xffu32.to_le_bytes());
        assert_eq!(&page[0x228..0x22c], &0x2345_6789u32.to_le_bytes());
    }

    #[test]
    fn e820_slice_is_clamped() {
        let mut bp = BootParams::zeroed();
        bp.e820_table[0] = E820Entry::new(0, 0x9fc00, E820Type::RAM);
        bp.e820_entries = 1;
        assert_eq!(bp.e820().len(), 1);
        bp.e820_entries = 200;
        assert_eq!(bp.e820().len(), 128);
        let bytes = bp.as_page();
        assert_eq!(bytes[0x1e8], 200);
        assert_eq!(&bytes[0x2d0 + 8..0x2d0 + 16], &0x9fc00u64.to_le_bytes());
    }
}
