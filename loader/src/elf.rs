//! PVH ELF images: the one ELF scanner, over the `object` crate's header
//! parsing, checked rule by rule.
//!
//! [`scan`] walks the ELF header, every program header and every note once
//! and reports what it found ([`ElfScan`]) with every problem, in the
//! order found. The loader takes the first problem as its error
//! ([`ElfImage::parse`], [`Mode::Strict`] stops there); `pvh inspect` lists
//! them all ([`Mode::Report`]); `pvh wrap` holds its stub to the loader's
//! rules. So an image is bootable to one caller exactly when it is to all.
//!
//! Rules (each a typed error, see [`LoadError`]): little-endian ELF32 or
//! ELF64 for x86 or x86-64, `ET_EXEC` or `ET_DYN`; every PT_LOAD's and
//! PT_NOTE's file bytes inside the file; `p_filesz <= p_memsz`; no two
//! PT_LOADs overlap in physical memory and none wraps (checked sorted:
//! O(n log n) for any number of headers); notes read with 4-byte padding
//! whatever `p_align` says, each bounded by its segment, the owner name
//! "Xen" checked as well as the type; a Xen `PHYS32_ENTRY` note with a 4-
//! or 8-byte descriptor whose address lies in the file-backed part of an
//! executable PT_LOAD; an optional, valid `PHYS32_RELOC` note. A later note
//! never erases an earlier one: a second note of the same type with the
//! same value is harmless, one with a different value is an error
//! ([`LoadError::ConflictingNotes`]), because hypervisors disagree on which
//! one counts (Xen's libelf takes the last, QEMU and linux-loader the
//! first).

use crate::error::LoadError;
use crate::layout::overlaps;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endian, Endianness, elf::FileHeader32, elf::FileHeader64};
use pvh_entry::elfnote::{
    Notes, Phys32Reloc, XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_PHYS32_RELOC, parse_phys32_entry,
};
use std::ops::ControlFlow;

/// The owner name of Linux's own ELF notes (include/linux/elfnote.h),
/// NUL included, as `namesz` counts it.
pub const LINUX_NOTE_NAME: &[u8] = b"Linux\0";

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
    /// Whether it carries a note owned by "Linux": it is a Linux kernel.
    pub linux: bool,
}

impl<'a> ElfImage<'a> {
    /// Parses and checks `bytes`: [`scan`] in [`Mode::Strict`], the first
    /// problem being the error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let scan = scan(bytes, Mode::Strict);
        if let Some(first) = scan.problems.into_iter().next() {
            return Err(first);
        }
        let (Some(class), Some(entry)) = (scan.class, scan.entry) else {
            // Unreachable: a scan without problems has both.
            return Err(LoadError::NoPvhEntry);
        };
        let mut segments: Vec<LoadSegment> = scan
            .headers
            .iter()
            .filter(|h| h.p_type == elf::PT_LOAD.0 && h.memsz > 0)
            .map(Phdr::load_segment)
            .collect();
        segments.sort_by_key(|s| s.paddr);
        Ok(Self {
            bytes,
            class,
            segments,
            entry: entry.value,
            reloc: scan.reloc,
            linux: scan.linux,
        })
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

/// How [`scan`] treats problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop at the first problem (the loader).
    Strict,
    /// Collect every problem (`pvh inspect`), up to [`MAX_PROBLEMS`].
    Report,
}

/// Most problems a [`Mode::Report`] scan keeps (the rest are counted).
pub const MAX_PROBLEMS: usize = 64;

/// One program header, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    /// Index in the program-header table.
    pub index: usize,
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

impl Phdr {
    fn load_segment(&self) -> LoadSegment {
        LoadSegment {
            index: self.index,
            paddr: self.paddr,
            offset: self.offset,
            filesz: self.filesz,
            memsz: self.memsz,
            executable: self.flags & elf::PF_X.0 != 0,
        }
    }

    /// Its file bytes, if they lie inside `bytes`.
    pub fn data<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let len = usize::try_from(self.filesz).ok()?;
        bytes.get(start..start.checked_add(len)?)
    }
}

/// The `PHYS32_ENTRY` note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryNote {
    /// The entry address.
    pub value: u32,
    /// Its descriptor size: 4 (Xen's documented form) or 8 (Linux's).
    pub desc_size: usize,
}

/// What [`scan`] read from an ELF, as far as it got, and every problem.
#[derive(Debug, Clone, Default)]
pub struct ElfScan {
    /// ELF class, once `e_ident` is read.
    pub class: Option<ElfClass>,
    /// `e_machine`, once the header is read.
    pub machine: Option<u16>,
    /// `e_type`.
    pub e_type: Option<u16>,
    /// `e_entry`.
    pub e_entry: Option<u64>,
    /// Every program header, in file order.
    pub headers: Vec<Phdr>,
    /// The first `PHYS32_ENTRY` note, if well-formed.
    pub entry: Option<EntryNote>,
    /// The first `PHYS32_RELOC` note, if well-formed.
    pub reloc: Option<Phys32Reloc>,
    /// Whether a note is owned by "Linux" ([`LINUX_NOTE_NAME`]): every
    /// Linux vmlinux has some (`LINUX_ELFNOTE_BUILD_SALT` from
    /// init/version.c, among others), other kernels have none.
    pub linux: bool,
    /// Problems, in the order found ([`Mode::Strict`]: at most one).
    pub problems: Vec<LoadError>,
    /// Problems past [`MAX_PROBLEMS`], not kept.
    pub more_problems: usize,
}

impl ElfScan {
    /// Whether the loader would boot it.
    pub fn bootable(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, mode: Mode, e: LoadError) -> ControlFlow<()> {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(e);
        } else {
            self.more_problems += 1;
        }
        match mode {
            Mode::Strict => ControlFlow::Break(()),
            Mode::Report => ControlFlow::Continue(()),
        }
    }
}

/// Scans an ELF image (see the module docs).
pub fn scan(bytes: &[u8], mode: Mode) -> ElfScan {
    let mut out = ElfScan::default();
    let _ = match bytes.get(4) {
        Some(&c) if c == elf::ELFCLASS32.0 => match FileHeader32::<Endianness>::parse(bytes) {
            Ok(hdr) => scan_with(hdr, bytes, ElfClass::Elf32, mode, &mut out),
            Err(e) => out.problem(mode, LoadError::Elf(e.to_string())),
        },
        Some(&c) if c == elf::ELFCLASS64.0 => match FileHeader64::<Endianness>::parse(bytes) {
            Ok(hdr) => scan_with(hdr, bytes, ElfClass::Elf64, mode, &mut out),
            Err(e) => out.problem(mode, LoadError::Elf(e.to_string())),
        },
        _ => out.problem(mode, LoadError::Elf("unknown ELF class".into())),
    };
    out
}

fn scan_with<H>(
    hdr: &H,
    bytes: &[u8],
    class: ElfClass,
    mode: Mode,
    out: &mut ElfScan,
) -> ControlFlow<()>
where
    H: FileHeader<Endian = Endianness>,
{
    out.class = Some(class);
    let endian = match hdr.endian() {
        Ok(e) => e,
        Err(e) => return out.problem(mode, LoadError::Elf(e.to_string())),
    };
    if !endian.is_little_endian() {
        // Nothing past this point means anything on x86.
        let _ = out.problem(mode, LoadError::Elf("big-endian ELF on x86".into()));
        return ControlFlow::Break(());
    }
    let machine = hdr.e_machine(endian).0;
    out.machine = Some(machine);
    out.e_entry = Some(hdr.e_entry(endian).into());
    if machine != elf::EM_386.0 && machine != elf::EM_X86_64.0 {
        out.problem(mode, LoadError::ElfMachine { machine })?;
    }
    let e_type = hdr.e_type(endian).0;
    out.e_type = Some(e_type);
    if e_type != elf::ET_EXEC.0 && e_type != elf::ET_DYN.0 {
        out.problem(mode, LoadError::ElfType { e_type })?;
    }
    let phdrs = match hdr.program_headers(endian, bytes) {
        Ok(p) => p,
        Err(e) => {
            let _ = out.problem(mode, LoadError::Elf(e.to_string()));
            return ControlFlow::Break(());
        }
    };
    let file_len = bytes.len() as u64;
    out.headers.reserve(phdrs.len());
    let mut loads = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        let h = Phdr {
            index,
            p_type: ph.p_type(endian).0,
            flags: ph.p_flags(endian).0,
            offset: ph.p_offset(endian).into(),
            vaddr: ph.p_vaddr(endian).into(),
            paddr: ph.p_paddr(endian).into(),
            filesz: ph.p_filesz(endian).into(),
            memsz: ph.p_memsz(endian).into(),
            align: ph.p_align(endian).into(),
        };
        out.headers.push(h);
        let outside = LoadError::SegmentOutsideFile {
            index,
            offset: h.offset,
            filesz: h.filesz,
            file_len,
        };
        if h.p_type == elf::PT_LOAD.0 {
            if h.offset
                .checked_add(h.filesz)
                .is_none_or(|end| end > file_len)
            {
                out.problem(mode, outside)?;
                continue;
            }
            if h.filesz > h.memsz {
                out.problem(
                    mode,
                    LoadError::FileszExceedsMemsz {
                        index,
                        filesz: h.filesz,
                        memsz: h.memsz,
                    },
                )?;
                continue;
            }
            if h.paddr.checked_add(h.memsz).is_none() {
                out.problem(
                    mode,
                    LoadError::AddressWraps {
                        what: "ELF segment",
                        start: h.paddr,
                        len: h.memsz,
                    },
                )?;
                continue;
            }
            if h.memsz > 0 {
                loads.push(h.load_segment());
            }
        } else if h.p_type == elf::PT_NOTE.0 {
            let Some(data) = h.data(bytes) else {
                out.problem(mode, outside)?;
                continue;
            };
            scan_notes(data, mode, out)?;
        }
    }
    if loads.is_empty() {
        out.problem(mode, LoadError::NoLoadSegments)?;
    }
    loads.sort_by_key(|s| s.paddr);
    for pair in loads.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if overlaps(&a.range(), &b.range()) {
            out.problem(
                mode,
                LoadError::SegmentOverlap {
                    first: a.index,
                    first_start: a.paddr,
                    first_end: a.paddr + a.memsz,
                    second: b.index,
                    second_start: b.paddr,
                    second_end: b.paddr + b.memsz,
                },
            )?;
        }
    }
    let Some(entry) = out.entry else {
        return out.problem(mode, LoadError::NoPvhEntry);
    };
    let e = u64::from(entry.value);
    if !loads
        .iter()
        .any(|s| s.executable && s.paddr <= e && e < s.paddr + s.filesz)
    {
        out.problem(mode, LoadError::EntryOutsideSegments { entry: e })?;
    }
    ControlFlow::Continue(())
}

/// The Xen notes of one `PT_NOTE` segment. A malformed note ends the
/// segment (its length fields cannot be trusted past it).
fn scan_notes(data: &[u8], mode: Mode, out: &mut ElfScan) -> ControlFlow<()> {
    for note in Notes::new(data) {
        let note = match note {
            Ok(n) => n,
            Err(e) => return out.problem(mode, e.into()),
        };
        if note.name == LINUX_NOTE_NAME || note.name == &LINUX_NOTE_NAME[..5] {
            out.linux = true;
        }
        if !note.is_xen() {
            continue;
        }
        match note.type_ {
            XEN_ELFNOTE_PHYS32_ENTRY => match parse_phys32_entry(note.desc) {
                Ok(value) => match out.entry {
                    None => {
                        out.entry = Some(EntryNote {
                            value,
                            desc_size: note.desc.len(),
                        })
                    }
                    Some(first) if first.value != value => out.problem(
                        mode,
                        LoadError::ConflictingNotes {
                            note: "PHYS32_ENTRY",
                            first: u64::from(first.value),
                            second: u64::from(value),
                        },
                    )?,
                    Some(_) => {}
                },
                Err(e) => out.problem(mode, e.into())?,
            },
            XEN_ELFNOTE_PHYS32_RELOC => match Phys32Reloc::parse(note.desc) {
                Ok(r) => match out.reloc {
                    None => out.reloc = Some(r),
                    Some(first) if first != r => out.problem(
                        mode,
                        LoadError::ConflictingNotes {
                            note: "PHYS32_RELOC",
                            first: u64::from(first.align),
                            second: u64::from(r.align),
                        },
                    )?,
                    Some(_) => {}
                },
                Err(e) => out.problem(mode, e.into())?,
            },
            _ => {}
        }
    }
    ControlFlow::Continue(())
}
