//! Builders for test images: tiny ELF32/ELF64 files and synthetic bzImages,
//! written byte by byte so tests can also make them malformed.
#![allow(dead_code)]

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// KVM's identity-map page, where `pvh`'s hypervisor puts it.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// KVM's TSS (three pages after the identity map).
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;

/// Guest RAM of `size` bytes as a KVM VMM lays it out: the identity-map
/// page and TSS reserved (what `pvh` passes), named as `pvh` names them.
pub fn kvm_ram(size: u64) -> Result<pvh_loader::GuestRam, pvh_loader::LoadError> {
    pvh_loader::GuestRam::builder(size)
        .reserve(
            "hypervisor reserved",
            KVM_IDENTITY_MAP_ADDR..KVM_TSS_ADDR + 0x3000,
        )
        .build()
}

/// One PT_LOAD.
#[derive(Clone, Debug)]
pub struct Seg {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub flags: u32,
    /// Overrides written instead of the real values.
    pub filesz: Option<u64>,
    pub offset: Option<u64>,
}

impl Seg {
    pub fn code(paddr: u64, data: &[u8]) -> Self {
        Self {
            paddr,
            data: data.to_vec(),
            memsz: data.len() as u64,
            flags: 5,
            filesz: None,
            offset: None,
        }
    }
    pub fn data(paddr: u64, data: &[u8], memsz: u64) -> Self {
        Self {
            paddr,
            data: data.to_vec(),
            memsz,
            flags: 6,
            filesz: None,
            offset: None,
        }
    }
}

/// An ELF to build.
#[derive(Clone, Debug)]
pub struct Elf {
    pub class64: bool,
    pub machine: u16,
    pub e_type: u16,
    pub big_endian: bool,
    pub segs: Vec<Seg>,
    /// (name, type, descriptor)
    pub notes: Vec<(Vec<u8>, u32, Vec<u8>)>,
    /// Each note in its own PT_NOTE segment (default: one segment).
    pub split_notes: bool,
}

pub const PHYS32_ENTRY: u32 = 18;
pub const PHYS32_RELOC: u32 = 19;

impl Elf {
    pub fn new64(segs: Vec<Seg>) -> Self {
        Self {
            class64: true,
            machine: 62,
            e_type: 2,
            big_endian: false,
            segs,
            notes: vec![],
            split_notes: false,
        }
    }
    pub fn new32(segs: Vec<Seg>) -> Self {
        Self {
            class64: false,
            machine: 3,
            e_type: 2,
            big_endian: false,
            segs,
            notes: vec![],
            split_notes: false,
        }
    }
    pub fn entry8(mut self, entry: u64) -> Self {
        self.notes.push((
            b"Xen\0".to_vec(),
            PHYS32_ENTRY,
            entry.to_le_bytes().to_vec(),
        ));
        self
    }
    pub fn entry4(mut self, entry: u32) -> Self {
        self.notes.push((
            b"Xen\0".to_vec(),
            PHYS32_ENTRY,
            entry.to_le_bytes().to_vec(),
        ));
        self
    }
    pub fn reloc(mut self, align: u32, min: u32, max: u32) -> Self {
        let mut d = align.to_le_bytes().to_vec();
        d.extend(min.to_le_bytes());
        d.extend(max.to_le_bytes());
        self.notes.push((b"Xen\0".to_vec(), PHYS32_RELOC, d));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let (ehsize, phentsize) = if self.class64 {
            (64u64, 56u64)
        } else {
            (52, 32)
        };
        let note_segs = if self.split_notes {
            self.notes.len()
        } else {
            usize::from(!self.notes.is_empty())
        };
        let nph = self.segs.len() as u64 + note_segs as u64;
        let mut notes = Vec::new();
        // (offset in `notes`, length) of each PT_NOTE.
        let mut note_ranges = Vec::new();
        for (name, t, desc) in &self.notes {
            let start = notes.len();
            notes.extend((name.len() as u32).to_le_bytes());
            notes.extend((desc.len() as u32).to_le_bytes());
            notes.extend(t.to_le_bytes());
            notes.extend(name);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
            notes.extend(desc);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
            note_ranges.push((start as u64, (notes.len() - start) as u64));
        }
        if !self.split_notes && !self.notes.is_empty() {
            note_ranges = vec![(0, notes.len() as u64)];
        }
        let notes_off = ehsize + nph * phentsize;
        let mut data_off = notes_off + notes.len() as u64;
        let mut body = notes.clone();
        let mut phdrs = Vec::new();
        for s in &self.segs {
            let off = s.offset.unwrap_or(data_off);
            let filesz = s.filesz.unwrap_or(s.data.len() as u64);
            phdrs.push((1u32, s.flags, off, s.paddr, filesz, s.memsz));
            body.extend(&s.data);
            data_off += s.data.len() as u64;
        }
        for (start, len) in note_ranges {
            phdrs.push((4, 4, notes_off + start, 0, len, len));
        }
        let be = self.big_endian;
        let mut out = Vec::new();
        let w16 =
            |o: &mut Vec<u8>, v: u16| o.extend(if be { v.to_be_bytes() } else { v.to_le_bytes() });
        let w32 =
            |o: &mut Vec<u8>, v: u32| o.extend(if be { v.to_be_bytes() } else { v.to_le_bytes() });
        let w64 =
            |o: &mut Vec<u8>, v: u64| o.extend(if be { v.to_be_bytes() } else { v.to_le_bytes() });
        out.extend(b"\x7fELF");
        out.push(if self.class64 { 2 } else { 1 });
        out.push(if be { 2 } else { 1 });
        out.push(1);
        out.extend([0u8; 9]);
        w16(&mut out, self.e_type);
        w16(&mut out, self.machine);
        w32(&mut out, 1);
        let first = self.segs.first().map_or(0, |s| s.paddr);
        if self.class64 {
            w64(&mut out, first);
            w64(&mut out, ehsize);
            w64(&mut out, 0);
        } else {
            w32(&mut out, first as u32);
            w32(&mut out, ehsize as u32);
            w32(&mut out, 0);
        }
        w32(&mut out, 0);
        w16(&mut out, ehsize as u16);
        w16(&mut out, phentsize as u16);
        w16(&mut out, nph as u16);
        w16(&mut out, 0);
        w16(&mut out, 0);
        w16(&mut out, 0);
        assert_eq!(out.len() as u64, ehsize);
        for (t, flags, off, paddr, filesz, memsz) in phdrs {
            w32(&mut out, t);
            if self.class64 {
                w32(&mut out, flags);
                w64(&mut out, off);
                w64(&mut out, paddr);
                w64(&mut out, paddr);
                w64(&mut out, filesz);
                w64(&mut out, memsz);
                w64(&mut out, 0x1000);
            } else {
                w32(&mut out, off as u32);
                w32(&mut out, paddr as u32);
                w32(&mut out, paddr as u32);
                w32(&mut out, filesz as u32);
                w32(&mut out, memsz as u32);
                w32(&mut out, flags);
                w32(&mut out, 0x1000);
            }
        }
        out.extend(body);
        out
    }
}

/// A small valid PVH ELF64: code at 1 MiB (entry at +0x10), data with BSS
/// after it.
pub fn simple_elf() -> Elf {
    Elf::new64(vec![
        Seg::code(0x10_0000, &[0x90; 0x40]),
        Seg::data(0x10_1000, &[0x11; 0x20], 0x3000),
    ])
    .entry8(0x10_0010)
}

/// Synthetic bzImages: the workspace's one builder.
#[allow(unused_imports)]
pub use pvh_bootparams::synth::SynthBzImage as Bz;

/// `data` with Linux's appended le32 uncompressed size.
pub fn with_size(mut compressed: Vec<u8>, raw_len: usize) -> Vec<u8> {
    compressed.extend((raw_len as u32).to_le_bytes());
    compressed
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// Guest memory of `backed` bytes at 0, filled with `fill`.
pub fn memory(backed: usize, fill: u8) -> GuestMemoryMmap {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), backed)]).unwrap();
    if fill != 0 {
        let chunk = vec![fill; 1 << 20];
        let mut at = 0;
        while at < backed {
            let n = chunk.len().min(backed - at);
            mem.write_slice(&chunk[..n], GuestAddress(at as u64))
                .unwrap();
            at += n;
        }
    }
    mem
}

pub fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
    v
}

/// Real artifacts: the directory, or None (skipping with a reason; a
/// failure under CI=true).
pub fn artifact(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("PVH_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pvh-artifacts")
        });
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            let msg = format!(
                "{} missing ({e}); run scripts/fetch-artifacts.sh",
                path.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{msg}");
            }
            eprintln!("skipping: {msg}");
            None
        }
    }
}

/// A `kB` field of /proc/self/status (`RssAnon`, `VmHWM`, ...), in KiB:
/// the memory tests' one reading of it.
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let prefix = format!("{field}:");
    let line = status.lines().find(|l| l.starts_with(&prefix)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
