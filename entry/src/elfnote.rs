//! Xen ELF notes that make an ELF image PVH-bootable.
//!
//! Source: Xen `xen/include/public/elfnote.h`. Notes are read and written
//! with 4-byte padding of name and descriptor, whatever the segment's
//! `p_align` says (linux-loader and QEMU both had bugs computing it from
//! `p_align`).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Owner name of Xen notes, with its NUL.
pub const XEN_NOTE_NAME: [u8; 4] = *b"Xen\0";
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_PHYS32_RELOC`: the image may be loaded elsewhere.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;

/// Why a note is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A note header or its padded name/descriptor runs past the segment.
    #[error("ELF note at offset {offset:#x} runs past the end of its {len:#x}-byte segment")]
    Truncated {
        /// Offset of the note in the segment.
        offset: usize,
        /// Segment length.
        len: usize,
    },
    /// `PHYS32_ENTRY`'s descriptor is neither 4 nor 8 bytes.
    #[error("PHYS32_ENTRY descriptor is {0} bytes; expected 4 or 8")]
    EntrySize(usize),
    /// `PHYS32_ENTRY` holds a value that does not fit in 32 bits.
    #[error("PHYS32_ENTRY {0:#x} is not a 32-bit address")]
    EntryNot32Bit(u64),
    /// `PHYS32_RELOC`'s descriptor is longer than three `u32`s or not a
    /// multiple of 4.
    #[error("PHYS32_RELOC descriptor is {0} bytes; expected 0, 4, 8 or 12")]
    RelocSize(usize),
    /// `PHYS32_RELOC`'s alignment is not a power of two.
    #[error("PHYS32_RELOC alignment {0:#x} is not a power of two")]
    RelocAlign(u32),
    /// `PHYS32_RELOC`'s range is empty.
    #[error("PHYS32_RELOC range {min:#x}..={max:#x} is empty")]
    RelocRange {
        /// Minimum load address.
        min: u32,
        /// Maximum last byte.
        max: u32,
    },
}

/// One note: owner name (with its NUL, unpadded), type, descriptor (unpadded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// Owner name bytes (`namesz` of them).
    pub name: &'a [u8],
    /// Note type.
    pub type_: u32,
    /// Descriptor bytes (`descsz` of them).
    pub desc: &'a [u8],
}

impl Note<'_> {
    /// Whether this is a Xen note.
    pub fn is_xen(&self) -> bool {
        self.name == XEN_NOTE_NAME || self.name == &XEN_NOTE_NAME[..3]
    }
}

fn pad4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Iterates the notes of a `PT_NOTE` segment (or `SHT_NOTE` section).
/// Stops, returning one error, at the first malformed note.
#[derive(Debug, Clone)]
pub struct Notes<'a> {
    data: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Notes<'a> {
    /// Notes in `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            offset: 0,
            failed: false,
        }
    }

    fn next_note(&mut self) -> Result<Note<'a>, NoteError> {
        let err = NoteError::Truncated {
            offset: self.offset,
            len: self.data.len(),
        };
        let rest = self.data.get(self.offset..).ok_or(err)?;
        let word = |i: usize| -> Result<u32, NoteError> {
            let b = rest.get(i * 4..i * 4 + 4).ok_or(err)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (namesz, descsz, type_) = (word(0)? as usize, word(1)? as usize, word(2)? as usize);
        let name_end = 12usize.checked_add(namesz).ok_or(err)?;
        let desc_start = pad4(name_end).ok_or(err)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(err)?;
        let name = rest.get(12..name_end).ok_or(err)?;
        let desc = rest.get(desc_start..desc_end).ok_or(err)?;
        let next = pad4(desc_end).ok_or(err)?.min(rest.len());
        self.offset = self.offset.checked_add(next).ok_or(err)?;
        Ok(Note {
            name,
            type_: type_ as u32,
            desc,
        })
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, NoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.data.len() {
            return None;
        }
        let note = self.next_note();
        self.failed = note.is_err();
        Some(note)
    }
}

/// Decodes a `PHYS32_ENTRY` descriptor: Xen documents 4 bytes, Linux emits
/// 8 on x86-64. Both are accepted; the value must fit in 32 bits.
pub fn parse_phys32_entry(desc: &[u8]) -> Result<u32, NoteError> {
    let value = match *desc {
        [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => return Err(NoteError::EntrySize(desc.len())),
    };
    u32::try_from(value).map_err(|_| NoteError::EntryNot32Bit(value))
}

/// The `PHYS32_RELOC` payload: where a relocatable PVH image may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Phys32Reloc {
    /// Required alignment of the load address (default 2 MiB).
    pub align: u32,
    /// Lowest load address (default 0).
    pub min_addr: u32,
    /// Highest address of the image's last byte (default 0xffffffff).
    pub max_addr: u32,
}

const _: () = {
    assert!(size_of::<Phys32Reloc>() == 12);
    assert!(offset_of!(Phys32Reloc, align) == 0);
    assert!(offset_of!(Phys32Reloc, min_addr) == 4);
    assert!(offset_of!(Phys32Reloc, max_addr) == 8);
};

impl Phys32Reloc {
    /// The values used for fields the descriptor leaves out.
    pub const DEFAULT: Self = Self {
        align: 0x20_0000,
        min_addr: 0,
        max_addr: 0xffff_ffff,
    };

    /// Decodes a descriptor of 0 to 3 `u32`s; missing fields take
    /// [`Self::DEFAULT`]'s values.
    pub fn parse(desc: &[u8]) -> Result<Self, NoteError> {
        if desc.len() > 12 || desc.len() % 4 != 0 {
            return Err(NoteError::RelocSize(desc.len()));
        }
        let mut words = [
            Self::DEFAULT.align,
            Self::DEFAULT.min_addr,
            Self::DEFAULT.max_addr,
        ];
        for (w, chunk) in words.iter_mut().zip(desc.chunks_exact(4)) {
            *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let [align, min_addr, max_addr] = words;
        if !align.is_power_of_two() {
            return Err(NoteError::RelocAlign(align));
        }
        if min_addr > max_addr {
            return Err(NoteError::RelocRange {
                min: min_addr,
                max: max_addr,
            });
        }
        Ok(Self {
            align,
            min_addr,
            max_addr,
        })
    }
}

/// A complete `PHYS32_ENTRY` note with an 8-byte descriptor, as a guest
/// image embeds it (Linux's form; readers accept it, QEMU requires it for
/// ELF64). `packed(4)`: notes are 4-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed(4))]
pub struct Phys32EntryNote {
    /// 4: "Xen\0".
    pub namesz: u32,
    /// 8.
    pub descsz: u32,
    /// [`XEN_ELFNOTE_PHYS32_ENTRY`].
    pub type_: u32,
    /// "Xen\0".
    pub name: [u8; 4],
    /// The 32-bit entry address, zero-extended.
    pub entry: u64,
}

const _: () = {
    assert!(size_of::<Phys32EntryNote>() == 24);
    assert!(core::mem::align_of::<Phys32EntryNote>() == 4);
    assert!(offset_of!(Phys32EntryNote, namesz) == 0);
    assert!(offset_of!(Phys32EntryNote, descsz) == 4);
    assert!(offset_of!(Phys32EntryNote, type_) == 8);
    assert!(offset_of!(Phys32EntryNote, name) == 12);
    assert!(offset_of!(Phys32EntryNote, entry) == 16);
};

impl Phys32EntryNote {
    /// The note for entry address `entry`.
    pub const fn new(entry: u32) -> Self {
        Self {
            namesz: 4,
            descsz: 8,
            type_: XEN_ELFNOTE_PHYS32_ENTRY,
            name: XEN_NOTE_NAME,
            entry: entry as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], type_: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&type_.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(pad4(v.len()).unwrap(), 0);
        v.extend_from_slice(desc);
        v.resize(pad4(v.len()).unwrap(), 0);
        v
    }

    #[test]
    fn reads_4_and_8_byte_entries() {
        let mut seg = note(b"GNU\0", 3, &[1, 2, 3, 4, 5]);
        seg.extend(note(b"Xen\0", 18, &0x100_0000u32.to_le_bytes()));
        seg.extend(note(b"Xen\0", 18, &0x200_0000u64.to_le_bytes()));
        let notes: Vec<_> = Notes::new(&seg).collect::<Result<_, _>>().unwrap();
        assert_eq!(notes.len(), 3);
        assert!(!notes[0].is_xen());
        assert_eq!(notes[0].desc, &[1, 2, 3, 4, 5]);
        assert_eq!(parse_phys32_entry(notes[1].desc), Ok(0x100_0000));
        assert_eq!(parse_phys32_entry(notes[2].desc), Ok(0x200_0000));
        assert_eq!(parse_phys32_entry(&[0; 5]), Err(NoteError::EntrySize(5)));
        assert_eq!(
            parse_phys32_entry(&0x1_0000_0000u64.to_le_bytes()),
            Err(NoteError::EntryNot32Bit(0x1_0000_0000))
        );
    }

    #[test]
    fn embedded_note_struct_matches_the_wire_format() {
        let n = Phys32EntryNote::new(0x10_0000);
        assert_eq!(
            n.as_bytes(),
            &note(b"Xen\0", 18, &0x10_0000u64.to_le_bytes())[..]
        );
    }

    #[test]
    fn reloc_defaults_and_errors() {
        assert_eq!(Phys32Reloc::parse(&[]), Ok(Phys32Reloc::DEFAULT));
        let linux = [0x20_0000u32, 0x100_0000, 0x3fff_ffff];
        let desc: Vec<u8> = linux.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            Phys32Reloc::parse(&desc),
            Ok(Phys32Reloc {
                align: 0x20_0000,
                min_addr: 0x100_0000,
                max_addr: 0x3fff_ffff
            })
        );
        assert_eq!(
            Phys32Reloc::parse(&desc[..4]).unwrap().max_addr,
            0xffff_ffff
        );
        assert_eq!(Phys32Reloc::parse(&[0; 6]), Err(NoteError::RelocSize(6)));
        assert_eq!(
            Phys32Reloc::parse(&3u32.to_le_bytes()),
            Err(NoteError::RelocAlign(3))
        );
        let bad: Vec<u8> = [0x1000u32, 9, 8]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(
            Phys32Reloc::parse(&bad),
            Err(NoteError::RelocRange { min: 9, max: 8 })
        );
    }

    #[test]
    fn truncated_notes_are_errors() {
        let seg = note(b"Xen\0", 18, &[0; 8]);
        for cut in 1..seg.len() {
            let r: Result<Vec<_>, _> = Notes::new(&seg[..cut]).collect();
            assert!(r.is_err(), "cut at {cut} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_segments_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut count = 0;
            for n in Notes::new(&bytes) {
                count += 1;
                if let Ok(n) = n {
                    let _ = (parse_phys32_entry(n.desc), Phys32Reloc::parse(n.desc));
                }
            }
            proptest::prop_assert!(count <= bytes.len() / 12 + 1);
        }
    }
}
