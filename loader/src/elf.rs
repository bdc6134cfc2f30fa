//! PVH ELF images: parsed with the `object` crate, checked rule by rule.
//!
//! Checks (each a typed error, see [`LoadError`]): little-endian ELF32 or
//! ELF64 for x86 or x86-64, `ET_EXEC` or `ET_DYN`; every PT_LOAD's file
//! bytes inside the file; `p_filesz <= p_memsz`; no two PT_LOADs overlap
//! in physical memory and none wraps; a Xen `PHYS32_ENTRY` note (4- or
//! 8-byte descriptor) whose address lies in the file-backed part of an
//! executable PT_LOAD; an optional, valid `PHYS32_RELOC` note.

use crate::error::LoadError;
use crate::layout::overlaps;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endian, Endianness, elf::FileHeader32, elf::FileHeader64};
use pvh_entry::elfnote::{
    Notes, Phys32Reloc, XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_PHYS32_RELOC, parse_phys32_entry,
};

/// ELF class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    /// ELF32.
    Elf32,
    /// ELF64.
    Elf64,
}

/// A PT_LOAD segment to copy into guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Index in the program-header table.
    pub index: usize,
    /// Physical load address (`p_paddr`), before relocation.
    pub paddr: u64,
    /// File offset of its bytes.
    pub offset: u64,
    /// Bytes from the file.
    pub filesz: u64,
    /// Bytes in memory; the `memsz - filesz` tail (BSS) is zeroed.
    pub memsz: u64,
    /// `PF_X`.
    pub executable: bool,
}

impl LoadSegment {
    /// Its physical range before relocation (never wraps: checked).
    pub fn range(&self) -> core::ops::Range<u64> {
        self.paddr..self.paddr + self.memsz
    }
}

/// A checked PVH-bootable ELF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage<'a> {
    bytes: &'a [u8],
    /// ELF class.
    pub class: ElfClass,
    /// Loadable segments with memory bytes, sorted by `paddr`.
    pub segments: Vec<LoadSegment>,
    /// The `PHYS32_ENTRY` address.
    pub entry: u32,
    /// The `PHYS32_RELOC` note, if the image is relocatable.
    pub reloc: Option<Phys32Reloc>,
}

impl<'a> ElfImage<'a> {
    /// Parses and checks `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        match bytes.get(4) {
            Some(&c) if c == elf::ELFCLASS32.0 => {
                let hdr = FileHeader32::<Endianness>::parse(bytes)
                    .map_err(|e| LoadError::Elf(e.to_string()))?;
                parse_with(hdr, bytes, ElfClass::Elf32)
            }
            Some(&c) if c == elf::ELFCLASS64.0 => {
                let hdr = FileHeader64::<Endianness>::parse(bytes)
                    .map_err(|e| LoadError::Elf(e.to_string()))?;
                parse_with(hdr, bytes, ElfClass::Elf64)
            }
            _ => Err(LoadError::Elf("unknown ELF class".into())),
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Segment `s`'s file bytes (checked at parse time).
    pub fn file_bytes(&self, s: &LoadSegment) -> &'a [u8] {
        // Bounds were checked in `parse`; `get` keeps this panic-free anyway.
        self.bytes
            .get(s.offset as usize..(s.offset + s.filesz) as usize)
            .unwrap_or(&[])
    }

    /// Lowest physical address and one past the highest.
    pub fn span(&self) -> core::ops::Range<u64> {
        let lo = self.segments.first().map_or(0, |s| s.paddr);
        let hi = self
            .segments
            .iter()
            .map(|s| s.paddr + s.memsz)
            .max()
            .unwrap_or(0);
        lo..hi
    }
}

/// Whether `bytes` start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(&elf::ELFMAG)
}

fn parse_with<'a, H>(hdr: &H, bytes: &'a [u8], class: ElfClass) -> Result<ElfImage<'a>, LoadError>
where
    H: FileHeader<Endian = Endianness>,
{
    let endian = hdr.endian().map_err(|e| LoadError::Elf(e.to_string()))?;
    if !endian.is_little_endian() {
        return Err(LoadError::Elf("big-endian ELF on x86".into()));
    }
    let machine = hdr.e_machine(endian);
    if machine != elf::EM_386 && machine != elf::EM_X86_64 {
        return Err(LoadError::ElfMachine { machine: machine.0 });
    }
    let e_type = hdr.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(LoadError::ElfType { e_type: e_type.0 });
    }
    let phdrs = hdr
        .program_headers(endian, bytes)
        .map_err(|e| LoadError::Elf(e.to_string()))?;
    let file_len = bytes.len() as u64;
    let mut segments = Vec::new();
    let mut entry = None;
    let mut reloc = None;
    for (index, ph) in phdrs.iter().enumerate() {
        let p_type = ph.p_type(endian);
        if p_type == elf::PT_LOAD {
            let offset: u64 = ph.p_offset(endian).into();
            let filesz: u64 = ph.p_filesz(endian).into();
            let memsz: u64 = ph.p_memsz(endian).into();
            let paddr: u64 = ph.p_paddr(endian).into();
            if offset.checked_add(filesz).is_none_or(|end| end > file_len) {
                return Err(LoadError::SegmentOutsideFile {
                    index,
                    offset,
                    filesz,
                    file_len,
                });
            }
            if filesz > memsz {
                return Err(LoadError::FileszExceedsMemsz {
                    index,
                    filesz,
                    memsz,
                });
            }
            if paddr.checked_add(memsz).is_none() {
                return Err(LoadError::AddressWraps {
                    what: "ELF segment",
                    start: paddr,
                    len: memsz,
                });
            }
            if memsz > 0 {
                segments.push(LoadSegment {
                    index,
                    paddr,
                    offset,
                    filesz,
                    memsz,
                    executable: ph.p_flags(endian).0 & elf::PF_X.0 != 0,
                });
            }
        } else if p_type == elf::PT_NOTE {
            let data = ph
                .data(endian, bytes)
                .map_err(|()| LoadError::SegmentOutsideFile {
                    index,
                    offset: ph.p_offset(endian).into(),
                    filesz: ph.p_filesz(endian).into(),
                    file_len,
                })?;
            for note in Notes::new(data) {
                let note = note?;
                if !note.is_xen() {
                    continue;
                }
                match note.type_ {
                    XEN_ELFNOTE_PHYS32_ENTRY if entry.is_none() => {
                        entry = Some(parse_phys32_entry(note.desc)?);
                    }
                    XEN_ELFNOTE_PHYS32_RELOC if reloc.is_none() => {
                        reloc = Some(Phys32Reloc::parse(note.desc)?);
                    }
                    _ => {}
                }
            }
        }
    }
    if segments.is_empty() {
        return Err(LoadError::NoLoadSegments);
    }
    segments.sort_by_key(|s| s.paddr);
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if overlaps(&a.range(), &b.range()) {
            return Err(LoadError::SegmentOverlap {
                first: a.index,
                first_start: a.paddr,
                first_end: a.paddr + a.memsz,
                second: b.index,
                second_start: b.paddr,
                second_end: b.paddr + b.memsz,
            });
        }
    }
    let entry = entry.ok_or(LoadError::NoPvhEntry)?;
    let e = u64::from(entry);
    if !segments
        .iter()
        .any(|s| s.executable && s.paddr <= e && e < s.paddr + s.filesz)
    {
        return Err(LoadError::EntryOutsideSegments { entry: e });
    }
    Ok(ElfImage {
        bytes,
        class,
        segments,
        entry,
        reloc,
    })
}
