//! `pvh wrap BZIMAGE [--initrd FILE] [--cmdline STR] [--subarch pc|xen] -o OUT`:
//! a PVH ELF that boots an unmodified bzImage under any PVH-capable
//! hypervisor.
//!
//! The output is the zero-page stub (`guests/stub`, a PVH ELF linked at
//! 1 MiB) with its program headers and bytes preserved, plus two loadable
//! segments holding the payload described in [`pvh_entry::payload`]: the
//! header, default command line and initrd at
//! [`pvh_entry::payload::PAYLOAD_ADDR`], and the bzImage
//! placed so that its protected-mode code starts on a `kernel_alignment`
//! boundary (a relocatable kernel then runs where the hypervisor loaded it,
//! with no copy). Section headers are not carried over: loaders and
//! `readelf -n` read notes through `PT_NOTE`.
//!
//! Every check is someone else's: the stub ELF must pass the loader's ELF
//! scanner in strict mode (`crate::elf::scan`), the kernel, its
//! command line and embedded initrd the Linux boot policy
//! (`pvh_entry::linux`) the stub applies; the subarch policy goes into the
//! payload header (version 2), so the image keeps it under any hypervisor.
//! The output is read back through the same scanner and payload reader.

use crate::elf::{ElfClass, Mode, Phdr, scan};
use crate::input::{Input, InputError};
use crate::{ElfImage, LoadError};
use object::elf::{
    ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_EXEC, EV_CURRENT, FileFlags, FileHeader64,
    OsAbi, PF_R, PF_W, PF_X, PT_LOAD, PT_PHDR, ProgramFlags, ProgramHeader64, ProgramType,
};
use object::endian::{LittleEndian as LE, U16, U32, U64};
use pvh_bootparams::BzImage;
use pvh_entry::SliceMemory;
use pvh_entry::linux::{KernelNeeds, LinuxBootError};
use pvh_entry::payload::{Layout, LayoutError, PAYLOAD_ADDR, PayloadError, Sizes, read_payload};
use pvh_entry::zeropage::SubarchPolicy;
use std::path::PathBuf;
use zerocopy::IntoBytes;

/// Why wrapping failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    /// An input is larger than [`MAX_IMAGE_FILE`]; it was not read.
    #[error(transparent)]
    Input(InputError),
    /// An input file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No stub is built in and none was given.
    #[error("no stub: this pvh was built without the guest images; pass --stub FILE")]
    NoStub,
    /// The stub is not a PVH ELF the loader would boot.
    #[error("stub is not a usable PVH ELF: {0}")]
    BadStub(LoadError),
    /// The stub is a bootable PVH ELF, but not the ELF64 x86-64 image the
    /// output (an ELF64 file carrying its program headers) can hold.
    #[error("stub must be a little-endian ELF64 for x86-64")]
    StubNotElf64,
    /// The stub's segments reach the payload address.
    #[error("stub segment {start:#x}..{end:#x} reaches the payload at {payload:#x}")]
    StubOverlapsPayload {
        /// Segment start.
        start: u64,
        /// Segment end.
        end: u64,
        /// The payload address.
        payload: u64,
    },
    /// The stub's program headers and the two payload segments do not fit
    /// in `e_phnum` (whose 0xffff means "see section 0").
    #[error(
        "stub has {count} program headers; with the payload's two, more than the {max} e_phnum holds"
    )]
    TooManySegments {
        /// The stub's program headers that would be kept.
        count: usize,
        /// The most the output may have.
        max: usize,
    },
    /// The kernel is an ELF: it boots through PVH directly.
    #[error("the kernel is an ELF file (a vmlinux?); boot it directly, wrap takes a bzImage")]
    KernelIsElf,
    /// The kernel is not a bzImage the stub can boot.
    #[error("kernel: {0}")]
    Kernel(#[from] LinuxBootError),
    /// The command line contains a NUL byte.
    #[error("command line contains a NUL byte")]
    CmdlineNul,
    /// The payload does not fit.
    #[error("payload layout: {0}")]
    Layout(#[from] LayoutError),
    /// The output does not read back as what was meant: a bug in `wrap`.
    #[error("the wrapped image does not read back: {0}")]
    ReadBack(String),
}

/// What to wrap with the kernel, builder-style
/// (`WrapOptions::new().initrd(&initrd).cmdline("console=ttyS0")`).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WrapOptions<'a> {
    /// An initrd to embed.
    pub initrd: Option<&'a [u8]>,
    /// A default command line (no NUL).
    pub cmdline: Option<&'a str>,
    /// The subarch policy the stub applies.
    pub subarch: SubarchPolicy,
}

impl<'a> WrapOptions<'a> {
    /// No initrd, no default command line, the PC subarch policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Embeds `initrd`.
    #[must_use]
    pub fn initrd(mut self, initrd: &'a [u8]) -> Self {
        self.initrd = Some(initrd);
        self
    }

    /// Embeds a default command line (no NUL).
    #[must_use]
    pub fn cmdline(mut self, cmdline: &'a str) -> Self {
        self.cmdline = Some(cmdline);
        self
    }

    /// The subarch policy the stub applies.
    #[must_use]
    pub fn subarch(mut self, subarch: SubarchPolicy) -> Self {
        self.subarch = subarch;
        self
    }
}

/// What [`wrap`] produced.
#[derive(Debug, Clone)]
pub struct Wrapped {
    /// The PVH ELF.
    pub elf: Vec<u8>,
    /// Where the parts went.
    pub layout: Layout,
}

const EHDR_SIZE: usize = size_of::<FileHeader64<LE>>();
const PHDR_SIZE: usize = size_of::<ProgramHeader64<LE>>();
const PAGE: u64 = 0x1000;

/// Most program headers an output may have: `e_phnum` is 16 bits and
/// 0xffff (`PN_XNUM`) means "the count is in section 0", which a file
/// without section headers cannot use.
pub const MAX_PHNUM: usize = 0xfffe;

/// Checks the stub with the loader's rules and wrap's own, and returns its
/// `e_entry` and the program headers to carry over (all but `PT_PHDR`).
fn read_stub(stub: &[u8]) -> Result<(u64, Vec<Phdr>), WrapError> {
    let s = scan(stub, Mode::Strict);
    if let Some(first) = s.problems.into_iter().next() {
        return Err(WrapError::BadStub(first));
    }
    if s.class != Some(ElfClass::Elf64) || s.machine != Some(EM_X86_64.0) {
        return Err(WrapError::StubNotElf64);
    }
    let mut kept = Vec::with_capacity(s.headers.len());
    for h in s.headers {
        if h.p_type == PT_PHDR.0 {
            continue;
        }
        if h.p_type == PT_LOAD.0 {
            let end = h.paddr.saturating_add(h.memsz);
            if end > PAYLOAD_ADDR {
                return Err(WrapError::StubOverlapsPayload {
                    start: h.paddr,
                    end,
                    payload: PAYLOAD_ADDR,
                });
            }
        }
        kept.push(h);
    }
    if kept.len() + 2 > MAX_PHNUM {
        return Err(WrapError::TooManySegments {
            count: kept.len(),
            max: MAX_PHNUM - 2,
        });
    }
    Ok((s.e_entry.unwrap_or(0), kept))
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Wraps `bzimage` (with an optional embedded initrd and default command
/// line) into the PVH ELF `stub`, with the default subarch policy (PC).
pub fn wrap(
    stub: &[u8],
    bzimage: &[u8],
    initrd: Option<&[u8]>,
    cmdline: Option<&str>,
) -> Result<Wrapped, WrapError> {
    let options = WrapOptions {
        initrd,
        cmdline,
        subarch: SubarchPolicy::Pc,
    };
    wrap_with(stub, bzimage, &options)
}

/// Wraps `bzimage` into the PVH ELF `stub` with `options`.
pub fn wrap_with(
    stub: &[u8],
    bzimage: &[u8],
    options: &WrapOptions<'_>,
) -> Result<Wrapped, WrapError> {
    let (initrd, cmdline) = (options.initrd, options.cmdline);
    let (e_entry, stub_segments) = read_stub(stub)?;
    if bzimage.starts_with(&ELFMAG) {
        return Err(WrapError::KernelIsElf);
    }
    let image = BzImage::parse(bzimage).map_err(LinuxBootError::from)?;
    let needs = KernelNeeds::of(&image)?;
    if let Some(c) = cmdline {
        if c.as_bytes().contains(&0) {
            return Err(WrapError::CmdlineNul);
        }
        needs.check_cmdline_len(c.len() as u64)?;
    }
    let sizes = Sizes {
        kernel: bzimage.len() as u64,
        setup: image.setup_size() as u64,
        kernel_align: needs.align,
        initrd: initrd.map(|i| i.len() as u64),
        cmdline: cmdline.map(|c| c.len() as u64),
    };
    let layout = Layout::plan(PAYLOAD_ADDR, &sizes)?;
    if let (Some(addr), Some(size)) = (layout.initrd, sizes.initrd) {
        // Where the stub finds it: the same check it makes.
        needs.check_initrd(addr, size, true)?;
    }

    // The payload's first segment: header, command line, initrd.
    let meta_end = match (layout.initrd, sizes.initrd) {
        (Some(a), Some(n)) => a + n,
        _ => layout
            .cmdline
            .map_or(PAYLOAD_ADDR + 80, |a| a + sizes.cmdline.unwrap_or(0) + 1),
    };
    let mut meta = vec![0u8; (meta_end - PAYLOAD_ADDR) as usize];
    let header = layout.header_for(&sizes, options.subarch);
    meta[..header.as_bytes().len()].copy_from_slice(header.as_bytes());
    if let (Some(a), Some(c)) = (layout.cmdline, cmdline) {
        let at = (a - PAYLOAD_ADDR) as usize;
        meta[at..at + c.len()].copy_from_slice(c.as_bytes());
    }
    if let (Some(a), Some(i)) = (layout.initrd, initrd) {
        let at = (a - PAYLOAD_ADDR) as usize;
        meta[at..at + i.len()].copy_from_slice(i);
    }

    // File layout: headers, the stub's bytes shifted by a page multiple
    // (so every segment keeps offset = address modulo the page size), then
    // the two payload segments at offsets congruent to their addresses.
    let phnum = stub_segments.len() + 2;
    let shift = align_up((EHDR_SIZE + phnum * PHDR_SIZE) as u64, PAGE);
    let stub_len = stub_segments
        .iter()
        .map(|s| s.offset + s.filesz)
        .max()
        .unwrap_or(0);
    let meta_off = align_up(shift + stub_len, PAGE) + (PAYLOAD_ADDR % PAGE);
    let kernel_off = align_up(meta_off + meta.len() as u64, PAGE) + (layout.kernel % PAGE);
    let total = kernel_off + bzimage.len() as u64;
    let mut out = vec![0u8; total as usize];

    let ehdr = FileHeader64::<LE> {
        e_ident: object::elf::Ident {
            magic: ELFMAG,
            class: ELFCLASS64,
            data: ELFDATA2LSB,
            version: EV_CURRENT,
            os_abi: OsAbi::default(),
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(LE, ET_EXEC),
        e_machine: U16::new(LE, EM_X86_64),
        e_version: U32::new(LE, u32::from(EV_CURRENT.0)),
        e_entry: U64::new(LE, e_entry),
        e_phoff: U64::new(LE, EHDR_SIZE as u64),
        e_shoff: U64::new(LE, 0),
        e_flags: U32::new(LE, FileFlags::default()),
        e_ehsize: U16::new(LE, EHDR_SIZE as u16),
        e_phentsize: U16::new(LE, PHDR_SIZE as u16),
        e_phnum: U16::new(LE, phnum as u16),
        e_shentsize: U16::new(LE, 0),
        e_shnum: U16::new(LE, 0),
        e_shstrndx: U16::new(LE, object::elf::SymbolSection::default()),
    };
    out[..EHDR_SIZE].copy_from_slice(object::pod::bytes_of(&ehdr));
    let phdr = |p_type: ProgramType,
                flags: ProgramFlags,
                offset: u64,
                addr: u64,
                filesz: u64,
                memsz: u64,
                align: u64| {
        ProgramHeader64::<LE> {
            p_type: U32::new(LE, p_type),
            p_flags: U32::new(LE, flags),
            p_offset: U64::new(LE, offset),
            p_vaddr: U64::new(LE, addr),
            p_paddr: U64::new(LE, addr),
            p_filesz: U64::new(LE, filesz),
            p_memsz: U64::new(LE, memsz),
            p_align: U64::new(LE, align),
        }
    };
    let mut phdrs: Vec<ProgramHeader64<LE>> = stub_segments
        .iter()
        .map(|s| {
            // A shift by whole pages keeps congruence modulo the page; a
            // larger alignment is lowered to the page (loaders place PVH
            // segments at their physical address anyway).
            let align = if s.align > PAGE && shift % s.align != 0 {
                PAGE
            } else {
                s.align
            };
            phdr(
                ProgramType(s.p_type),
                ProgramFlags(s.flags),
                s.offset + shift,
                s.paddr,
                s.filesz,
                s.memsz,
                align,
            )
        })
        .collect();
    phdrs.push(phdr(
        PT_LOAD,
        PF_R | PF_W,
        meta_off,
        PAYLOAD_ADDR,
        meta.len() as u64,
        meta.len() as u64,
        PAGE,
    ));
    phdrs.push(phdr(
        PT_LOAD,
        PF_R | PF_W | PF_X,
        kernel_off,
        layout.kernel,
        bzimage.len() as u64,
        bzimage.len() as u64,
        PAGE,
    ));
    for (i, p) in phdrs.iter().enumerate() {
        let at = EHDR_SIZE + i * PHDR_SIZE;
        out[at..at + PHDR_SIZE].copy_from_slice(object::pod::bytes_of(p));
    }
    let (shift, stub_len) = (shift as usize, stub_len as usize);
    out[shift..shift + stub_len].copy_from_slice(&stub[..stub_len]);
    let meta_off = meta_off as usize;
    out[meta_off..meta_off + meta.len()].copy_from_slice(&meta);
    let kernel_off = kernel_off as usize;
    out[kernel_off..].copy_from_slice(bzimage);
    read_back(&out, &layout)?;
    Ok(Wrapped { elf: out, layout })
}

/// Reads the output back through the loader's scanner and the stub's
/// payload reader: what any PVH loader and the stub will see.
fn read_back(elf: &[u8], layout: &Layout) -> Result<(), WrapError> {
    let bad = |e: &dyn std::fmt::Display| WrapError::ReadBack(e.to_string());
    let image = ElfImage::parse(elf).map_err(|e| bad(&e))?;
    let meta = image
        .segments
        .iter()
        .find(|s| s.paddr == PAYLOAD_ADDR)
        .ok_or_else(|| bad(&"no payload segment"))?;
    let mem = SliceMemory::new(PAYLOAD_ADDR, image.file_bytes(meta));
    let (_, payload) = read_payload(&mem, PAYLOAD_ADDR)
        .map_err(|e: PayloadError| bad(&e))?
        .ok_or_else(|| bad(&"no payload header"))?;
    if payload.kernel.start != layout.kernel {
        return Err(bad(&"payload kernel address"));
    }
    Ok(())
}

/// Largest input file `wrap` and `inspect` take: a wrapped image's payload
/// lies below 4 GiB ([`pvh_entry::payload::Layout::plan`]), and a kernel
/// image any PVH loader places is far smaller. Regular files are mapped
/// (nothing is read that is not used); anything else is read up to this.
pub const MAX_IMAGE_FILE: u64 = 1 << 32;

/// Opens an input of `wrap` or `inspect` through [`Input`] (mapped, or
/// read with [`MAX_IMAGE_FILE`] as the limit).
pub fn open_image(path: &std::path::Path) -> Result<Input, InputError> {
    Input::open_within(
        path,
        MAX_IMAGE_FILE,
        "an input of pvh wrap or inspect may have",
    )
}
