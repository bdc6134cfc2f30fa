//! `pvh inspect IMAGE [--json]`: what a boot image is and how it boots.
//!
//! Recognises a PVH ELF (an ELF with a Xen `PHYS32_ENTRY` note), any other
//! ELF, and a bzImage; reports the PVH entry and relocation notes, the
//! bzImage setup-header fields a loader cares about, and the payload
//! `pvh wrap` embeds, if any. The report is a plain struct
//! ([`Report`]) printed as text or JSON (serde).

use object::Endianness;
use object::elf::{EM_386, EM_X86_64, FileHeader32, FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use pvh_bootparams::BzImage;
use pvh_entry::SliceMemory;
use pvh_entry::elfnote::{
    Notes, Phys32Reloc, XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_PHYS32_RELOC, parse_phys32_entry,
};
use pvh_entry::payload::{PAYLOAD_ADDR, PayloadHeader, read_payload};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `pvh inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The image: a PVH ELF (vmlinux, a `pvh wrap` output, a Rust guest)
    /// or a bzImage.
    pub image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why an image cannot be inspected at all (a malformed part is reported
/// inside the [`Report`] instead).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The kind of image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An ELF with a `PHYS32_ENTRY` note.
    PvhElf,
    /// An ELF without one: not PVH-bootable.
    Elf,
    /// A Linux bzImage.
    Bzimage,
    /// Anything else.
    Other,
}

impl Format {
    /// The name used in text output.
    pub fn name(self) -> &'static str {
        match self {
            Self::PvhElf => "PVH ELF",
            Self::Elf => "ELF (no PVH entry note)",
            Self::Bzimage => "bzImage",
            Self::Other => "other",
        }
    }
}

/// What `pvh inspect` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The kind of image.
    pub format: Format,
    /// File size in bytes.
    pub size: u64,
    /// ELF facts, for ELF images.
    pub elf: Option<ElfInfo>,
    /// Setup-header facts, for bzImages.
    pub bzimage: Option<BzImageInfo>,
    /// The `pvh wrap` payload, when one is embedded.
    pub wrap: Option<WrapInfo>,
    /// Problems found while reading (malformed notes, a bad payload).
    pub problems: Vec<String>,
}

/// ELF facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// `ELF32` or `ELF64`.
    pub class: &'static str,
    /// Machine name (`x86_64`, `i386`) or `EM_<number>`.
    pub machine: String,
    /// `e_entry`.
    pub entry: u64,
    /// The `PHYS32_ENTRY` value.
    pub pvh_entry: Option<u32>,
    /// Size of the `PHYS32_ENTRY` descriptor (4 or 8 bytes).
    pub pvh_entry_size: Option<usize>,
    /// The `PHYS32_RELOC` values.
    pub phys32_reloc: Option<Reloc>,
    /// `PT_LOAD` segments.
    pub segments: Vec<Segment>,
}

/// `PHYS32_RELOC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reloc {
    /// Alignment.
    pub align: u32,
    /// Lowest load address.
    pub min_addr: u32,
    /// Highest last byte.
    pub max_addr: u32,
}

/// One `PT_LOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Physical address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// bzImage facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BzImageInfo {
    /// Protocol version as `major.minor`.
    pub protocol: String,
    /// Raw protocol version.
    pub protocol_raw: u16,
    /// Raw xloadflags.
    pub xloadflags: u16,
    /// Names of the xloadflags set.
    pub xloadflags_names: Vec<String>,
    /// `init_size`.
    pub init_size: u32,
    /// `pref_address`.
    pub pref_address: u64,
    /// `kernel_alignment`.
    pub kernel_alignment: u32,
    /// `relocatable_kernel != 0`.
    pub relocatable: bool,
    /// Payload compression (`xz`, `gzip`, ...).
    pub compression: &'static str,
    /// Setup sectors' size in bytes.
    pub setup_size: usize,
    /// Protected-mode code size in bytes.
    pub kernel_size: usize,
    /// `cmdline_size`.
    pub cmdline_size: u32,
    /// Whether the 64-bit boot protocol (and so `pvh wrap`) can boot it.
    pub boot_64bit: bool,
    /// Why not, when it cannot.
    pub boot_64bit_error: Option<String>,
}

/// The payload embedded by `pvh wrap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrapInfo {
    /// Header address.
    pub header_addr: u64,
    /// Header version.
    pub version: u32,
    /// bzImage address and size.
    pub kernel: (u64, u64),
    /// Initrd address and size.
    pub initrd: Option<(u64, u64)>,
    /// The default command line.
    pub cmdline: Option<String>,
    /// The embedded kernel's facts.
    pub kernel_info: Option<BzImageInfo>,
}

/// Inspects the file at `path`.
pub fn inspect_file(path: &std::path::Path) -> Result<Report, InspectError> {
    let bytes = std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(inspect(&bytes))
}

/// Inspects image bytes.
pub fn inspect(bytes: &[u8]) -> Report {
    let mut report = Report {
        format: Format::Other,
        size: bytes.len() as u64,
        elf: None,
        bzimage: None,
        wrap: None,
        problems: Vec::new(),
    };
    if bytes.starts_with(b"\x7fELF") {
        let parsed = match bytes.get(4) {
            Some(2) => elf_info::<FileHeader64<Endianness>>(bytes, "ELF64", &mut report),
            Some(1) => elf_info::<FileHeader32<Endianness>>(bytes, "ELF32", &mut report),
            other => Err(format!("unknown ELF class {other:?}")),
        };
        match parsed {
            Ok(elf) => {
                report.format = if elf.pvh_entry.is_some() {
                    Format::PvhElf
                } else {
                    Format::Elf
                };
                report.elf = Some(elf);
            }
            Err(e) => report.problems.push(format!("malformed ELF: {e}")),
        }
    } else {
        match BzImage::parse(bytes) {
            Ok(image) => {
                report.format = Format::Bzimage;
                report.bzimage = Some(bzimage_info(&image));
            }
            // Boot flag and "HdrS" present, but unusable (too old, cut
            // short): say why instead of just "other".
            Err(e) if bytes.get(0x202..0x206) == Some(b"HdrS") => {
                report
                    .problems
                    .push(format!("Linux kernel image, but: {e}"));
            }
            Err(_) => {}
        }
    }
    report
}

/// The facts of a parsed bzImage.
pub fn bzimage_info(image: &BzImage<'_>) -> BzImageInfo {
    let hdr = image.header();
    let (major, minor) = hdr.protocol();
    let xlf = hdr.xload_flags();
    let needs = pvh_entry::linux::KernelNeeds::of(image);
    BzImageInfo {
        protocol: format!("{major}.{minor:02}"),
        protocol_raw: hdr.version,
        xloadflags: xlf.bits(),
        xloadflags_names: xlf.iter_names().map(|(n, _)| n.to_owned()).collect(),
        init_size: hdr.init_size,
        pref_address: hdr.pref_address,
        kernel_alignment: hdr.kernel_alignment,
        relocatable: hdr.relocatable_kernel != 0,
        compression: image.compression().name(),
        setup_size: image.setup_size(),
        kernel_size: image.kernel().len(),
        cmdline_size: hdr.cmdline_size,
        boot_64bit: needs.is_ok(),
        boot_64bit_error: needs.err().map(|e| e.to_string()),
    }
}

fn elf_info<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    class: &'static str,
    report: &mut Report,
) -> Result<ElfInfo, String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let machine = match header.e_machine(endian) {
        EM_X86_64 => "x86_64".to_owned(),
        EM_386 => "i386".to_owned(),
        m => format!("EM_{m}"),
    };
    let mut info = ElfInfo {
        class,
        machine,
        entry: header.e_entry(endian).into(),
        pvh_entry: None,
        pvh_entry_size: None,
        phys32_reloc: None,
        segments: Vec::new(),
    };
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?;
    for ph in phdrs {
        let p_type = ph.p_type(endian);
        if p_type == PT_LOAD {
            let paddr: u64 = ph.p_paddr(endian).into();
            info.segments.push(Segment {
                paddr,
                filesz: ph.p_filesz(endian).into(),
                memsz: ph.p_memsz(endian).into(),
            });
            if paddr == PAYLOAD_ADDR {
                match ph.data(endian, data) {
                    Ok(seg) => {
                        let segments = info_segments_of::<Elf>(phdrs, endian, data);
                        let wrap = wrap_info(&segments, seg, report);
                        report.wrap = wrap;
                    }
                    Err(()) => report
                        .problems
                        .push("payload segment outside the file".into()),
                }
            }
        } else if p_type == PT_NOTE {
            let Ok(seg) = ph.data(endian, data) else {
                report.problems.push("PT_NOTE outside the file".into());
                continue;
            };
            for note in Notes::new(seg) {
                let note = match note {
                    Ok(n) => n,
                    Err(e) => {
                        report.problems.push(format!("PT_NOTE: {e}"));
                        break;
                    }
                };
                if !note.is_xen() {
                    continue;
                }
                match note.type_ {
                    XEN_ELFNOTE_PHYS32_ENTRY => match parse_phys32_entry(note.desc) {
                        Ok(v) => {
                            info.pvh_entry = Some(v);
                            info.pvh_entry_size = Some(note.desc.len());
                        }
                        Err(e) => report.problems.push(format!("PHYS32_ENTRY: {e}")),
                    },
                    XEN_ELFNOTE_PHYS32_RELOC => match Phys32Reloc::parse(note.desc) {
                        Ok(r) => {
                            info.phys32_reloc = Some(Reloc {
                                align: r.align,
                                min_addr: r.min_addr,
                                max_addr: r.max_addr,
                            })
                        }
                        Err(e) => report.problems.push(format!("PHYS32_RELOC: {e}")),
                    },
                    _ => {}
                }
            }
        }
    }
    Ok(info)
}

/// The loadable segments as (paddr, file bytes), to read payload parts
/// that live in other segments than the header.
fn info_segments_of<'d, Elf: FileHeader<Endian = Endianness>>(
    phdrs: &'d [Elf::ProgramHeader],
    endian: Endianness,
    data: &'d [u8],
) -> Vec<(u64, &'d [u8])> {
    phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD)
        .filter_map(|ph| Some((ph.p_paddr(endian).into(), ph.data(endian, data).ok()?)))
        .collect()
}

/// Reads `len` bytes at physical `addr` from whichever segment holds them.
fn segment_bytes<'d>(segments: &[(u64, &'d [u8])], addr: u64, len: u64) -> Option<&'d [u8]> {
    segments.iter().find_map(|&(base, bytes)| {
        let start = usize::try_from(addr.checked_sub(base)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        bytes.get(start..end)
    })
}

fn wrap_info(
    segments: &[(u64, &[u8])],
    header_segment: &[u8],
    report: &mut Report,
) -> Option<WrapInfo> {
    let mem = SliceMemory::new(PAYLOAD_ADDR, header_segment);
    let (header, payload): (PayloadHeader, _) = match read_payload(&mem, PAYLOAD_ADDR) {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            report.problems.push(format!("wrap payload: {e}"));
            return None;
        }
    };
    let kernel_bytes = segment_bytes(
        segments,
        payload.kernel.start,
        payload.kernel.end - payload.kernel.start,
    );
    let kernel_info = match kernel_bytes.map(BzImage::parse) {
        Some(Ok(image)) => Some(bzimage_info(&image)),
        Some(Err(e)) => {
            report.problems.push(format!("embedded kernel: {e}"));
            None
        }
        None => {
            report
                .problems
                .push("embedded kernel is not in the file's segments".into());
            None
        }
    };
    let cmdline = payload.cmdline.as_ref().and_then(|r| {
        let bytes = segment_bytes(segments, r.start, r.end - r.start);
        if bytes.is_none() {
            report
                .problems
                .push("embedded cmdline is not in the file's segments".into());
        }
        bytes.map(|b| String::from_utf8_lossy(b).into_owned())
    });
    if let Some(r) = &payload.initrd {
        if segment_bytes(segments, r.start, r.end - r.start).is_none() {
            report
                .problems
                .push("embedded initrd is not in the file's segments".into());
        }
    }
    Some(WrapInfo {
        header_addr: PAYLOAD_ADDR,
        version: header.version,
        kernel: (
            payload.kernel.start,
            payload.kernel.end - payload.kernel.start,
        ),
        initrd: payload.initrd.map(|r| (r.start, r.end - r.start)),
        cmdline,
        kernel_info,
    })
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as text, one fact per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "format: {}", self.format.name());
        let _ = writeln!(out, "size: {} bytes", self.size);
        if let Some(elf) = &self.elf {
            let _ = writeln!(
                out,
                "elf: {} {}, e_entry {:#x}",
                elf.class, elf.machine, elf.entry
            );
            match (elf.pvh_entry, elf.pvh_entry_size) {
                (Some(e), Some(n)) => {
                    let _ = writeln!(out, "pvh entry: {e:#x} (PHYS32_ENTRY, {n}-byte value)");
                }
                _ => {
                    let _ = writeln!(out, "pvh entry: none (no XEN_ELFNOTE_PHYS32_ENTRY)");
                }
            }
            match elf.phys32_reloc {
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "phys32 reloc: align {:#x}, min {:#x}, max {:#x}",
                        r.align, r.min_addr, r.max_addr
                    );
                }
                None => {
                    let _ = writeln!(out, "phys32 reloc: none (load at the linked addresses)");
                }
            }
            for s in &elf.segments {
                let _ = writeln!(
                    out,
                    "load: {:#x} filesz {:#x} memsz {:#x}",
                    s.paddr, s.filesz, s.memsz
                );
            }
        }
        if let Some(bz) = &self.bzimage {
            bz_text(&mut out, "", bz);
        }
        match &self.wrap {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "wrap payload: version {} at {:#x}",
                    w.version, w.header_addr
                );
                let _ = writeln!(out, "  kernel: {:#x} ({} bytes)", w.kernel.0, w.kernel.1);
                match w.initrd {
                    Some((a, n)) => {
                        let _ = writeln!(out, "  initrd: {a:#x} ({n} bytes)");
                    }
                    None => {
                        let _ = writeln!(out, "  initrd: none");
                    }
                }
                let _ = writeln!(out, "  cmdline: {:?}", w.cmdline.as_deref().unwrap_or(""));
                if let Some(bz) = &w.kernel_info {
                    bz_text(&mut out, "  kernel ", bz);
                }
            }
            None if self.elf.is_some() => {
                let _ = writeln!(out, "wrap payload: none");
            }
            None => {}
        }
        for p in &self.problems {
            let _ = writeln!(out, "problem: {p}");
        }
        out
    }
}

fn bz_text(out: &mut String, prefix: &str, bz: &BzImageInfo) {
    let _ = writeln!(
        out,
        "{prefix}protocol: {} ({:#06x})",
        bz.protocol, bz.protocol_raw
    );
    let _ = writeln!(
        out,
        "{prefix}xloadflags: {:#x} [{}]",
        bz.xloadflags,
        bz.xloadflags_names.join(" ")
    );
    let _ = writeln!(out, "{prefix}init_size: {:#x}", bz.init_size);
    let _ = writeln!(out, "{prefix}pref_address: {:#x}", bz.pref_address);
    let _ = writeln!(out, "{prefix}kernel_alignment: {:#x}", bz.kernel_alignment);
    let _ = writeln!(out, "{prefix}relocatable: {}", bz.relocatable);
    let _ = writeln!(out, "{prefix}compression: {}", bz.compression);
    let _ = writeln!(
        out,
        "{prefix}setup: {:#x} bytes, code: {:#x} bytes, cmdline_size: {}",
        bz.setup_size, bz.kernel_size, bz.cmdline_size
    );
    match &bz.boot_64bit_error {
        None => {
            let _ = writeln!(out, "{prefix}64-bit boot: yes");
        }
        Some(e) => {
            let _ = writeln!(out, "{prefix}64-bit boot: no ({e})");
        }
    }
}

/// Runs `pvh inspect`: prints the report, returns the exit status (0, or
/// `BAD_INPUT` when the file cannot be read).
pub fn run(args: &InspectArgs) -> u8 {
    match inspect_file(&args.image) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            0
        }
        Err(e) => {
            eprintln!("pvh inspect: {e}");
            crate::outcome::status::BAD_INPUT
        }
    }
}
