//! The benchmark guest: exit through the exit port (QEMU's
//! `isa-debug-exit` at 0xf4, which `pvh` implements too) with value 0, as
//! the very first thing; and the same code as a PVH ELF image.

use object::elf::{
    ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_SYSV, EM_X86_64, ET_EXEC, EV_CURRENT, FileHeader64,
    Ident, PF_R, PF_X, PT_LOAD, PT_NOTE, ProgramHeader64,
};
use object::endian::{LittleEndian as LE, U16, U32, U64};
use object::pod::bytes_of;
use pvh_entry::elfnote::Phys32EntryNote;
use zerocopy::IntoBytes;

/// The exit port the guest writes to (the machine contract's).
pub use pvh_entry::machine::EXIT_PORT;

/// Where the code is loaded and entered (1 MiB, where PVH kernels load).
pub const ENTRY: u32 = pvh_entry::machine::ONE_MIB as u32;

/// `xor eax, eax; out 0xf4, al; hlt` (32-bit code). The `out` is the exit;
/// `hlt` only stops a VMM that ignores the port (it is handled in-kernel
/// with an in-kernel irqchip, so such a VMM hangs visibly instead of
/// running off into zeroed memory).
pub const CODE: [u8; 5] = [0x31, 0xc0, 0xe6, EXIT_PORT as u8, 0xf4];

/// File offset of the code in [`pvh_elf`] (after the ELF header, two
/// program headers and the note).
const CODE_OFFSET: usize = 0x100;

/// A PVH ELF (ELF64, x86-64, `ET_EXEC`) that loads [`CODE`] at [`ENTRY`]
/// and names [`ENTRY`] in a `PHYS32_ENTRY` note: one `PT_LOAD` and one
/// `PT_NOTE`, no sections.
pub fn pvh_elf() -> Vec<u8> {
    let e = LE;
    let ehsize = size_of::<FileHeader64<LE>>();
    let phsize = size_of::<ProgramHeader64<LE>>();
    let note = Phys32EntryNote::new(ENTRY);
    let note_offset = ehsize + 2 * phsize;
    let note_len = note.as_bytes().len();
    // Fixed layout; the sizes are compile-time facts of the structs.
    assert!(note_offset + note_len <= CODE_OFFSET);
    let u64_of = |n: usize| U64::new(e, n as u64);
    let header = FileHeader64::<LE> {
        e_ident: Ident {
            magic: ELFMAG,
            class: ELFCLASS64,
            data: ELFDATA2LSB,
            version: EV_CURRENT,
            os_abi: ELFOSABI_SYSV,
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(e, ET_EXEC),
        e_machine: U16::new(e, EM_X86_64),
        e_version: U32::new(e, u32::from(EV_CURRENT.0)),
        e_entry: U64::new(e, u64::from(ENTRY)),
        e_phoff: u64_of(ehsize),
        e_shoff: U64::new(e, 0),
        e_flags: U32::new(e, Default::default()),
        e_ehsize: U16::new(e, ehsize as u16),
        e_phentsize: U16::new(e, phsize as u16),
        e_phnum: U16::new(e, 2),
        e_shentsize: U16::new(e, 0),
        e_shnum: U16::new(e, 0),
        e_shstrndx: U16::new(e, Default::default()),
    };
    let load = ProgramHeader64::<LE> {
        p_type: U32::new(e, PT_LOAD),
        p_flags: U32::new(e, PF_R | PF_X),
        p_offset: u64_of(CODE_OFFSET),
        p_vaddr: U64::new(e, u64::from(ENTRY)),
        p_paddr: U64::new(e, u64::from(ENTRY)),
        p_filesz: u64_of(CODE.len()),
        p_memsz: u64_of(CODE.len()),
        p_align: U64::new(e, 0x10),
    };
    let note_ph = ProgramHeader64::<LE> {
        p_type: U32::new(e, PT_NOTE),
        p_flags: U32::new(e, PF_R),
        p_offset: u64_of(note_offset),
        p_vaddr: U64::new(e, 0),
        p_paddr: U64::new(e, 0),
        p_filesz: u64_of(note_len),
        p_memsz: u64_of(note_len),
        p_align: U64::new(e, 4),
    };
    let mut image = Vec::with_capacity(CODE_OFFSET + CODE.len());
    image.extend_from_slice(bytes_of(&header));
    image.extend_from_slice(bytes_of(&load));
    image.extend_from_slice(bytes_of(&note_ph));
    image.extend_from_slice(note.as_bytes());
    image.resize(CODE_OFFSET, 0);
    image.extend_from_slice(&CODE);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_is_what_the_pvh_loader_accepts_and_enters_at_the_code() {
        let image = pvh_elf();
        let elf = pvh_loader::ElfImage::parse(&image).unwrap();
        assert_eq!(elf.class, pvh_loader::ElfClass::Elf64);
        assert_eq!(elf.entry, 0x10_0000);
        assert_eq!(elf.segments.len(), 1);
        let seg = &elf.segments[0];
        assert_eq!(
            (seg.paddr, seg.offset, seg.filesz, seg.memsz),
            (0x10_0000, 0x100, 5, 5)
        );
        assert!(seg.executable);
        assert_eq!(&image[..4], b"\x7fELF");
        assert_eq!(&image[0x100..], &[0x31, 0xc0, 0xe6, 0xf4, 0xf4]);
        // e_entry (offset 24) and the note's descriptor (last 8 bytes of
        // the 24-byte note at 64 + 2 * 56 = 176).
        assert_eq!(&image[24..32], &0x10_0000u64.to_le_bytes());
        assert_eq!(&image[176..180], &4u32.to_le_bytes());
        assert_eq!(&image[184..188], &18u32.to_le_bytes());
        assert_eq!(&image[188..192], b"Xen\0");
        assert_eq!(&image[192..200], &0x10_0000u64.to_le_bytes());
    }
}
