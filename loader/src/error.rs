//! Every way planning or loading can fail.

use crate::plan::Purpose;
use pvh_entry::elfnote::NoteError;
use pvh_entry::linux::LinuxBootError;

/// Why a guest cannot be planned or loaded. Each variant carries the
/// offending values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A reserved range the VMM passed ([`crate::GuestRamBuilder::reserve`])
    /// is unusable.
    #[error("reserved range {name} {start:#x}..{end:#x} is {why}")]
    BadReservation {
        /// The reservation's name.
        name: &'static str,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// What is wrong: empty, not page-aligned, overlapping another.
        why: &'static str,
    },
    /// The RAM size is not a multiple of 4 KiB.
    #[error("RAM size {size:#x} is not a multiple of 4 KiB")]
    RamUnaligned {
        /// Requested size.
        size: u64,
    },
    /// The RAM size is outside the supported range.
    #[error("RAM size {size:#x} is outside {min:#x}..={max:#x}")]
    RamSize {
        /// Requested size.
        size: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// An address computation wraps past 2^64.
    #[error("{what} at {start:#x} with length {len:#x} wraps past the end of the address space")]
    AddressWraps {
        /// What was being placed.
        what: &'static str,
        /// Its start.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// The kernel bytes are neither an ELF nor a bzImage.
    #[error("kernel image is neither ELF nor bzImage (first bytes {magic:02x?})")]
    UnknownImage {
        /// Up to four leading bytes.
        magic: Vec<u8>,
    },
    /// The ELF structure could not be parsed.
    #[error("malformed ELF: {0}")]
    Elf(String),
    /// The ELF is not for x86 or x86-64.
    #[error("ELF machine {machine} is not x86 (3) or x86-64 (62)")]
    ElfMachine {
        /// `e_machine`.
        machine: u16,
    },
    /// The ELF is not an executable (`ET_EXEC`) image.
    #[error("ELF type {e_type} is not ET_EXEC (2)")]
    ElfType {
        /// `e_type`.
        e_type: u16,
    },
    /// The ELF has no PT_LOAD segment with bytes in memory.
    #[error("ELF has no loadable segment")]
    NoLoadSegments,
    /// A segment's file bytes are outside the file.
    #[error(
        "segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the {file_len:#x}-byte file"
    )]
    SegmentOutsideFile {
        /// Program-header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// File length.
        file_len: u64,
    },
    /// A segment has more file bytes than memory bytes.
    #[error("segment {index}: p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}")]
    FileszExceedsMemsz {
        /// Program-header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// Two loadable segments overlap in physical memory.
    #[error(
        "segments {first} ({first_start:#x}..{first_end:#x}) and {second} ({second_start:#x}..{second_end:#x}) overlap"
    )]
    SegmentOverlap {
        /// One program-header index.
        first: usize,
        /// Its start.
        first_start: u64,
        /// Its end.
        first_end: u64,
        /// The other.
        second: usize,
        /// Its start.
        second_start: u64,
        /// Its end.
        second_end: u64,
    },
    /// The PVH entry does not lie in an executable loaded segment.
    #[error("entry {entry:#x} is not inside an executable loaded segment")]
    EntryOutsideSegments {
        /// The entry address (before relocation).
        entry: u64,
    },
    /// Two Xen notes of the same type disagree: hypervisors differ on which
    /// one counts, so the image boots differently depending on who loads
    /// it.
    #[error(
        "two {note} notes disagree ({first:#x} and {second:#x}): which one a loader uses varies"
    )]
    ConflictingNotes {
        /// Which note.
        note: &'static str,
        /// The first one's value (`PHYS32_RELOC`: its alignment, or the
        /// first field that differs).
        first: u64,
        /// The second one's.
        second: u64,
    },
    /// The ELF carries no `XEN_ELFNOTE_PHYS32_ENTRY`.
    #[error("ELF has no Xen PHYS32_ENTRY note: not PVH-bootable")]
    NoPvhEntry,
    /// A Xen note is malformed.
    #[error("bad Xen ELF note: {0}")]
    Note(#[from] NoteError),
    /// The bzImage fails the Linux boot policy (`pvh_entry::linux`): not
    /// usable, or its initrd, command line or placement cannot satisfy it.
    /// The same error, with the same text, as the stub, `pvh wrap` and
    /// `pvh inspect` give for the same input.
    #[error("kernel: {0}")]
    Linux(#[from] LinuxBootError),
    /// The image does not fit the requested protocol.
    #[error("a {image} image cannot be booted with protocol {protocol}")]
    WrongImage {
        /// What the image is.
        image: &'static str,
        /// The protocol asked for.
        protocol: &'static str,
    },
    /// The bzImage payload uses a compression this build cannot unpack.
    #[error("bzImage payload compression {0} is not supported for pvh-unpack")]
    UnsupportedCompression(&'static str),
    /// Decompression failed.
    #[error("decompressing the {format} payload failed: {reason}")]
    Decompress {
        /// Compression format.
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Decompressing produced more bytes than the image announces.
    #[error("decompressed payload exceeds {limit:#x} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The image announces a decompressed size above what the loader
    /// unpacks; nothing was decompressed.
    #[error(
        "the payload announces {announced:#x} bytes decompressed, more than the {limit:#x} \
         pvh-unpack allows; nothing was decompressed"
    )]
    AnnouncedTooLarge {
        /// The size in the payload's trailer.
        announced: u64,
        /// The limit.
        limit: u64,
    },
    /// The image announces a decompressed size above the guest's RAM,
    /// where the unpacked vmlinux could never be loaded; nothing was
    /// decompressed.
    #[error(
        "the payload announces {announced:#x} bytes decompressed, more than the guest's \
         {ram:#x} bytes of RAM; nothing was decompressed"
    )]
    AnnouncedOverRam {
        /// The size in the payload's trailer (or of an uncompressed
        /// payload).
        announced: u64,
        /// The guest's RAM.
        ram: u64,
    },
    /// Something must lie in usable RAM and does not.
    #[error("{purpose} ({start:#x}..{end:#x}) is not inside usable guest RAM")]
    NotInRam {
        /// What.
        purpose: Purpose,
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// Two placements overlap.
    #[error(
        "{first} ({first_start:#x}..{first_end:#x}) overlaps {second} ({second_start:#x}..{second_end:#x})"
    )]
    Overlap {
        /// One placement.
        first: Purpose,
        /// Its start.
        first_start: u64,
        /// Its end.
        first_end: u64,
        /// The other.
        second: Purpose,
        /// Its start.
        second_start: u64,
        /// Its end.
        second_end: u64,
    },
    /// No free RAM fits a placement.
    #[error(
        "no free guest RAM for {purpose}: {size:#x} bytes aligned to {align:#x} in {min:#x}..{max:#x}"
    )]
    NoSpace {
        /// What.
        purpose: Purpose,
        /// Bytes needed.
        size: u64,
        /// Alignment.
        align: u64,
        /// Lowest acceptable address.
        min: u64,
        /// One past the highest acceptable byte.
        max: u64,
    },
    /// `Relocation::At` or `Relocation::Anywhere` was asked for a PVH ELF
    /// without a PHYS32_RELOC note.
    #[error("kernel at {start:#x}..{end:#x} cannot be relocated (no PHYS32_RELOC note)")]
    NotRelocatable {
        /// Preferred start.
        start: u64,
        /// Preferred end.
        end: u64,
    },
    /// A requested load address breaks the kernel's relocation rules.
    #[error("load address {addr:#x} breaks PHYS32_RELOC (align {align:#x}, {min:#x}..={max:#x})")]
    BadLoadAddress {
        /// Requested address.
        addr: u64,
        /// Required alignment.
        align: u64,
        /// Minimum address.
        min: u64,
        /// Maximum last byte.
        max: u64,
    },
    /// A `linux_loader` command line could not be converted.
    #[error("linux-loader command line: {0}")]
    Cmdline(String),
    /// The Linux 64-bit identity map would need more than one PDPT.
    #[error("identity map up to {end:#x} exceeds the 512 GiB the boot page tables cover")]
    IdentityMapTooLarge {
        /// One past the highest byte to map.
        end: u64,
    },
    /// The start_info writer refused.
    #[error("writing start_info: {0}")]
    StartInfo(#[from] pvh_entry::WriteError),
    /// The zero-page translation refused.
    #[error("building the zero page: {0}")]
    ZeroPage(#[from] pvh_entry::TranslateError),
    /// Reading back the start_info failed.
    #[error("reading back start_info: {0}")]
    ReadBack(#[from] pvh_entry::ReadError),
    /// A write fell outside guest memory.
    #[error("writing guest memory: {0}")]
    Memory(#[from] pvh_entry::OutOfRange),
}

impl From<pvh_bootparams::ImageError> for LoadError {
    /// A malformed bzImage is the Linux policy's `Image` error, so every
    /// caller words it the same way.
    fn from(e: pvh_bootparams::ImageError) -> Self {
        Self::Linux(LinuxBootError::Image(e))
    }
}
