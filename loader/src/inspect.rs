//! What a boot image is and how it boots: the library half of `pvh
//! inspect IMAGE [--json]` (the command itself, which prints the report,
//! is `pvh-hypervisor`'s).
//!
//! Recognises a PVH ELF (an ELF with a Xen `PHYS32_ENTRY` note), any other
//! ELF, and a bzImage; reports the PVH entry and relocation notes, the
//! bzImage setup-header fields a loader cares about, and the payload
//! `pvh wrap` embeds, if any. The report is a plain struct
//! ([`Report`]) printed as text, or as JSON with the `serde` feature.
//!
//! The verdict is the boot path's own: an ELF goes through the loader's
//! scanner (`crate::elf::scan`, reporting mode: every problem, the
//! first being the one `pvh boot` stops at), a bzImage and a wrapped
//! kernel through the Linux boot policy (`pvh_entry::linux`), a wrap
//! payload through the stub's reader. `bootable` is false, the exit status
//! non-zero and `problems` says why, exactly when `pvh boot` (or the stub)
//! refuses the image, in the same words.

use crate::LoadError;
use crate::elf::{ElfClass, ElfScan, Mode, scan};
use object::elf::{EM_386, EM_X86_64, PT_LOAD};
use pvh_bootparams::BzImage;
use pvh_entry::SliceMemory;
use pvh_entry::linux::stub::StubError;
use pvh_entry::linux::{KernelNeeds, LinuxBootError, not_a_kernel};
use pvh_entry::payload::{PAYLOAD_ADDR, PayloadHeader, read_payload};
use pvh_entry::zeropage::SubarchPolicy;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Why an image cannot be inspected at all (a malformed part is reported
/// inside the [`Report`] instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`crate::wrap::MAX_IMAGE_FILE`]; it was not
    /// read.
    #[error(transparent)]
    Input(crate::InputError),
}

/// The kind of image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    /// Whether `pvh boot` boots it (for a bzImage: through the stub or the
    /// Linux 64-bit protocol, which apply the same policy).
    pub bootable: bool,
    /// Why not, in the words `pvh boot` and the stub use; the first is the
    /// one `pvh boot` stops at.
    pub problems: Vec<String>,
}

/// ELF facts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Reloc {
    /// Alignment.
    pub align: u32,
    /// Lowest load address.
    pub min_addr: u32,
    /// Highest last byte.
    pub max_addr: u32,
}

/// One `PT_LOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Segment {
    /// Physical address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// bzImage facts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    /// The subarch policy the stub applies: `pc` or `xen`.
    pub subarch: &'static str,
}

/// Inspects the file at `path`.
pub fn inspect_file(path: &std::path::Path) -> Result<Report, InspectError> {
    let bytes = crate::wrap::open_image(path).map_err(|e| match e {
        crate::InputError::Io { path, source } => InspectError::Read { path, source },
        e => InspectError::Input(e),
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
        bootable: false,
        problems: Vec::new(),
    };
    if crate::elf::is_elf(bytes) {
        let s = scan(bytes, Mode::Report);
        report.problems = s.problems.iter().map(ToString::to_string).collect();
        if s.more_problems > 0 {
            report
                .problems
                .push(format!("... and {} more problems", s.more_problems));
        }
        if let Some(elf) = elf_info(&s) {
            report.format = if elf.pvh_entry.is_some() {
                Format::PvhElf
            } else {
                Format::Elf
            };
            report.elf = Some(elf);
            if let Some(seg) = s
                .headers
                .iter()
                .find(|h| h.p_type == PT_LOAD.0 && h.paddr == PAYLOAD_ADDR)
            {
                let loads: Vec<(u64, &[u8])> = s
                    .headers
                    .iter()
                    .filter(|h| h.p_type == PT_LOAD.0)
                    .filter_map(|h| Some((h.paddr, h.data(bytes)?)))
                    .collect();
                match seg.data(bytes) {
                    Some(data) => report.wrap = wrap_info(&loads, data, &mut report.problems),
                    None => report
                        .problems
                        .push("payload segment outside the file".into()),
                }
            }
        }
    } else {
        match BzImage::parse(bytes) {
            Ok(image) => {
                report.format = Format::Bzimage;
                let info = bzimage_info(&image);
                if let Some(e) = &info.boot_64bit_error {
                    report.problems.push(e.clone());
                }
                report.bzimage = Some(info);
            }
            // A Linux kernel, but unusable (too old, cut short): say why in
            // the loader's words instead of just "other".
            Err(e) if !not_a_kernel(&e) => {
                report.problems.push(LoadError::from(e).to_string());
            }
            Err(_) => report.problems.push(
                LoadError::UnknownImage {
                    magic: bytes.iter().take(4).copied().collect(),
                }
                .to_string(),
            ),
        }
    }
    report.bootable = report.problems.is_empty();
    report
}

/// The facts of a parsed bzImage, and whether the Linux boot policy takes
/// it (`boot_64bit_error` is the loader's error text).
pub fn bzimage_info(image: &BzImage<'_>) -> BzImageInfo {
    let hdr = image.header();
    let (major, minor) = hdr.protocol();
    let xlf = hdr.xload_flags();
    let needs = KernelNeeds::of(image);
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
        boot_64bit_error: needs.err().map(|e| LoadError::from(e).to_string()),
    }
}

fn elf_info(s: &ElfScan) -> Option<ElfInfo> {
    let class = match s.class? {
        ElfClass::Elf32 => "ELF32",
        ElfClass::Elf64 => "ELF64",
    };
    let machine = match s.machine? {
        m if m == EM_X86_64.0 => "x86_64".to_owned(),
        m if m == EM_386.0 => "i386".to_owned(),
        m => format!("EM_{m}"),
    };
    Some(ElfInfo {
        class,
        machine,
        entry: s.e_entry.unwrap_or(0),
        pvh_entry: s.entry.map(|e| e.value),
        pvh_entry_size: s.entry.map(|e| e.desc_size),
        phys32_reloc: s.reloc.map(|r| Reloc {
            align: r.align,
            min_addr: r.min_addr,
            max_addr: r.max_addr,
        }),
        segments: s
            .headers
            .iter()
            .filter(|h| h.p_type == PT_LOAD.0)
            .map(|h| Segment {
                paddr: h.paddr,
                filesz: h.filesz,
                memsz: h.memsz,
            })
            .collect(),
    })
}

/// Reads `len` bytes at physical `addr` from whichever segment holds them.
fn segment_bytes<'d>(segments: &[(u64, &'d [u8])], addr: u64, len: u64) -> Option<&'d [u8]> {
    segments.iter().find_map(|&(base, bytes)| {
        let start = usize::try_from(addr.checked_sub(base)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        bytes.get(start..end)
    })
}

/// The payload `pvh wrap` embeds, checked as the stub checks it: the
/// header by the stub's reader, the kernel, its default command line and
/// its initrd by the Linux boot policy. Problems go to `problems` in the
/// stub's words.
fn wrap_info(
    segments: &[(u64, &[u8])],
    header_segment: &[u8],
    problems: &mut Vec<String>,
) -> Option<WrapInfo> {
    let mem = SliceMemory::new(PAYLOAD_ADDR, header_segment);
    let (header, payload): (PayloadHeader, _) = match read_payload(&mem, PAYLOAD_ADDR) {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            problems.push(StubError::from(e).to_string());
            return None;
        }
    };
    let kernel_bytes = segment_bytes(
        segments,
        payload.kernel.start,
        payload.kernel.end - payload.kernel.start,
    );
    let stub_error = |e: LinuxBootError| StubError::Kernel(e).to_string();
    let mut needs = None;
    let kernel_info = match kernel_bytes.map(BzImage::parse) {
        Some(Ok(image)) => {
            match KernelNeeds::of(&image) {
                Ok(n) => needs = Some(n),
                Err(e) => problems.push(stub_error(e)),
            }
            Some(bzimage_info(&image))
        }
        Some(Err(e)) => {
            problems.push(stub_error(e.into()));
            None
        }
        None => {
            problems.push("embedded kernel is not in the file's segments".into());
            None
        }
    };
    let cmdline = payload.cmdline.as_ref().and_then(|r| {
        let len = r.end - r.start;
        if let Some(Err(e)) = needs.map(|n| n.check_cmdline_len(len)) {
            problems.push(stub_error(e));
        }
        let bytes = segment_bytes(segments, r.start, len);
        if bytes.is_none() {
            problems.push("embedded cmdline is not in the file's segments".into());
        }
        bytes.map(|b| String::from_utf8_lossy(b).into_owned())
    });
    if let Some(r) = &payload.initrd {
        if let Some(Err(e)) = needs.map(|n| n.check_initrd(r.start, r.end - r.start, true)) {
            problems.push(stub_error(e));
        }
        if segment_bytes(segments, r.start, r.end - r.start).is_none() {
            problems.push("embedded initrd is not in the file's segments".into());
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
        subarch: match payload.subarch {
            SubarchPolicy::Pc => "pc",
            SubarchPolicy::Xen => "xen",
        },
    })
}

impl Report {
    /// The report as pretty JSON.
    #[cfg(feature = "serde")]
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
                    "wrap payload: version {} at {:#x}, subarch {}",
                    w.version, w.header_addr, w.subarch
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
        let _ = writeln!(
            out,
            "bootable: {}",
            if self.bootable { "yes" } else { "no" }
        );
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
