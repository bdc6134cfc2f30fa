//! The fuzz corpora, replayed on stable as ordinary tests: every input in
//! `fuzz/corpus/<target>/` and `loader/fuzz/corpus/<target>/` (seeds,
//! what `scripts/fuzz.sh --minimize` kept, and each finding, named
//! `regression-*`) goes through the same body the fuzz target runs
//! (`fuzz/bodies/`, `loader/fuzz/bodies/`), so a fixed finding stays fixed
//! without nightly.
//!
//! `cargo test -p pvh-tests --test fuzz_corpus -- --ignored write_seeds`
//! (re)writes the `seed-*` files from the builders below.

#[path = "../../fuzz/bodies/acpi.rs"]
mod acpi;
#[path = "../../fuzz/bodies/bootfdt.rs"]
mod bootfdt;
#[path = "../../loader/fuzz/bodies/bzimage.rs"]
mod bzimage;
#[path = "../../fuzz/bodies/bzimage_header.rs"]
mod bzimage_header;
#[path = "../../loader/fuzz/bodies/elf.rs"]
mod elf;
#[path = "../../loader/fuzz/bodies/guest_ram.rs"]
mod guest_ram;
#[path = "../../fuzz/bodies/inspect.rs"]
mod inspect;
#[path = "../../fuzz/bodies/payload.rs"]
mod payload;
#[path = "../../fuzz/bodies/start_info.rs"]
mod start_info;
#[path = "../../fuzz/bodies/translate.rs"]
mod translate;

use std::path::{Path, PathBuf};

/// A fuzz target's body: one input.
type Body = fn(&[u8]);

/// Every fuzz target: (corpus directory from the repository root, body).
const TARGETS: [(&str, Body); 9] = [
    ("fuzz/corpus/start_info", start_info::run),
    ("fuzz/corpus/translate", translate::run),
    ("fuzz/corpus/bzimage_header", bzimage_header::run),
    ("fuzz/corpus/bootfdt", bootfdt::run),
    ("fuzz/corpus/payload", payload::run),
    ("fuzz/corpus/acpi", acpi::run),
    ("fuzz/corpus/inspect", inspect::run),
    ("loader/fuzz/corpus/elf", elf::run),
    ("loader/fuzz/corpus/bzimage", bzimage::run),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs every file of `dir` through `body`; returns how many there were.
fn replay(dir: &str, body: Body) -> usize {
    let dir = root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(result.is_ok(), "{}: input {name} fails", dir.display());
    }
    files.len()
}

macro_rules! corpus_test {
    ($name:ident, $index:expr) => {
        #[test]
        fn $name() {
            let (dir, body) = TARGETS[$index];
            let n = replay(dir, body);
            // At least the seeds: an empty corpus would test nothing.
            assert!(n >= 2, "{dir}: {n} inputs");
        }
    };
}

corpus_test!(start_info_corpus, 0);
corpus_test!(translate_corpus, 1);
corpus_test!(bzimage_header_corpus, 2);
corpus_test!(bootfdt_corpus, 3);
corpus_test!(payload_corpus, 4);
corpus_test!(acpi_corpus, 5);
corpus_test!(inspect_corpus, 6);
corpus_test!(elf_corpus, 7);
corpus_test!(bzimage_corpus, 8);

#[test]
fn every_fuzz_target_is_replayed() {
    // A target added to a fuzz crate without a corpus test here fails.
    for (crate_dir, prefix) in [
        ("fuzz", "fuzz/corpus/"),
        ("loader/fuzz", "loader/fuzz/corpus/"),
    ] {
        let manifest = std::fs::read_to_string(root().join(crate_dir).join("Cargo.toml")).unwrap();
        for line in manifest.lines() {
            if let Some(name) = line
                .strip_prefix("name = \"")
                .and_then(|l| l.strip_suffix('"'))
            {
                if name.starts_with("pvh-") {
                    continue;
                }
                let dir = format!("{prefix}{name}");
                assert!(
                    TARGETS.iter().any(|(d, _)| *d == dir),
                    "fuzz target {name} has no corpus replay"
                );
            }
        }
    }
}

// --- Seeds ------------------------------------------------------------------

/// A minimal ELF64 PVH kernel: one PT_LOAD at 1 MiB holding the file, a
/// PT_NOTE with PHYS32_ENTRY (and PHYS32_RELOC if `reloc`), and `extra`
/// further PT_LOADs (paddr, bytes) appended after the code.
fn pvh_elf(code: &[u8], reloc: bool, extra: &[(u64, &[u8])]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const LOAD: u64 = 0x10_0000;
    let phnum = 2 + extra.len();
    let note_off = EHDR + phnum * PHDR;
    let mut note = Vec::new();
    let mut add_note = |kind: u32, desc: &[u8]| {
        note.extend(4u32.to_le_bytes());
        note.extend((desc.len() as u32).to_le_bytes());
        note.extend(kind.to_le_bytes());
        note.extend(b"Xen\0");
        note.extend(desc);
    };
    let code_off = (note_off + 64).next_multiple_of(16);
    let entry = LOAD + code_off as u64;
    add_note(18, &(entry as u32).to_le_bytes());
    if reloc {
        let mut d = Vec::new();
        d.extend(0x20_0000u32.to_le_bytes());
        d.extend(0x10_0000u32.to_le_bytes());
        d.extend(0x3fff_ffffu32.to_le_bytes());
        add_note(19, &d);
    }
    assert!(note_off + note.len() <= code_off);
    let main_len = code_off + code.len();
    let mut extra_at = Vec::new();
    let mut end = main_len.next_multiple_of(16);
    for (_, bytes) in extra {
        extra_at.push(end);
        end = (end + bytes.len()).next_multiple_of(16);
    }
    let mut f = vec![0u8; end];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4..8].copy_from_slice(&[2, 1, 1, 0]);
    let put16 =
        |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |f: &mut Vec<u8>, at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2);
    put16(&mut f, 18, 62);
    put32(&mut f, 20, 1);
    put64(&mut f, 24, entry);
    put64(&mut f, 32, EHDR as u64);
    put16(&mut f, 52, EHDR as u16);
    put16(&mut f, 54, PHDR as u16);
    put16(&mut f, 56, phnum as u16);
    let mut phdr = |i: usize, kind: u32, off: usize, paddr: u64, len: usize| {
        let at = EHDR + i * PHDR;
        put32(&mut f, at, kind);
        put32(&mut f, at + 4, 7);
        put64(&mut f, at + 8, off as u64);
        put64(&mut f, at + 16, paddr);
        put64(&mut f, at + 24, paddr);
        put64(&mut f, at + 32, len as u64);
        put64(&mut f, at + 40, len as u64);
        put64(&mut f, at + 48, 4);
    };
    phdr(0, 1, 0, LOAD, main_len);
    phdr(1, 4, note_off, LOAD + note_off as u64, note.len());
    for (i, ((paddr, bytes), off)) in extra.iter().zip(&extra_at).enumerate() {
        phdr(2 + i, 1, *off, *paddr, bytes.len());
    }
    f[note_off..note_off + note.len()].copy_from_slice(&note);
    f[code_off..main_len].copy_from_slice(code);
    for ((_, bytes), off) in extra.iter().zip(&extra_at) {
        f[*off..*off + bytes.len()].copy_from_slice(bytes);
    }
    f
}

/// A gzip stream of `data` in one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    assert!(data.len() <= 0xffff);
    let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    g.push(1); // BFINAL, stored
    g.extend((data.len() as u16).to_le_bytes());
    g.extend((!(data.len() as u16)).to_le_bytes());
    g.extend(data);
    g.extend(crc32fast::hash(data).to_le_bytes());
    g.extend((data.len() as u32).to_le_bytes());
    g
}

/// A synthetic bzImage (protocol 2.15, 64-bit entry, relocatable) whose
/// payload is `payload` followed by Linux's le32 decompressed size.
fn bzimage(payload: &[u8], unpacked_len: usize) -> Vec<u8> {
    let setup_sects = 1u8;
    let setup = (usize::from(setup_sects) + 1) * 512;
    let payload_offset = 0x40usize;
    let mut full_payload = payload.to_vec();
    full_payload.extend((unpacked_len as u32).to_le_bytes());
    let code_len = payload_offset + full_payload.len() + 0x40;
    let mut b = vec![0u8; setup + code_len];
    b[0x1f1] = setup_sects;
    b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    b[0x200] = 0xeb;
    b[0x201] = 0x6a; // header ends at 0x26c
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x211] = 0x01; // LOADED_HIGH
    b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    b[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    b[0x234] = 1; // relocatable
    b[0x236..0x238].copy_from_slice(&0x0003u16.to_le_bytes()); // KERNEL_64 | above 4G
    b[0x238..0x23c].copy_from_slice(&0x7ffu32.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&(payload_offset as u32).to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&(full_payload.len() as u32).to_le_bytes());
    b[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    b[0x260..0x264].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let at = setup + payload_offset;
    b[at..at + full_payload.len()].copy_from_slice(&full_payload);
    b
}

/// `hlt; jmp $`.
const CODE: &[u8] = &[0xf4, 0xeb, 0xfe];

fn start_info_memory(base: u64, at: u64, len: usize) -> Vec<u8> {
    use pvh_entry::{
        MemmapEntry, MemmapType, ModuleSpec, Placement, StartInfoSpec, write_start_info,
    };
    let mut mem = pvh_entry::SliceMemory::new(base, vec![0u8; len]);
    let modules = [
        ModuleSpec::new(base + 0x300, 0x40).cmdline(Some(b"initrd")),
        ModuleSpec::new(base + 0x340, 0x10),
    ];
    let memmap = [
        MemmapEntry::new(0, 0xa_0000, MemmapType::RAM),
        MemmapEntry::new(0x10_0000, 0x1f0_0000, MemmapType::RAM),
    ];
    let spec = StartInfoSpec::new(1)
        .cmdline(Some(b"console=ttyS0 quiet"))
        .rsdp_paddr(0xe_0000)
        .modules(&modules)
        .memmap(&memmap);
    let placement = Placement {
        start_info: at,
        modlist: at + 0x40,
        memmap: at + 0xc0,
        strings: at + 0x100,
    };
    write_start_info(&mut mem, &spec, &placement).expect("write the seed start_info");
    mem.bytes().to_vec()
}

fn dtc(name: &str) -> Vec<u8> {
    let path = root().join("loader/bootdomains/tests/fixtures").join(name);
    let out = std::process::Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o", "-"])
        .arg(&path)
        .output()
        .expect("dtc (scripts/setup.sh installs device-tree-compiler)");
    assert!(out.status.success(), "dtc {name}");
    out.stdout
}

/// Every seed: (corpus directory, file name, bytes).
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use pvh_entry::payload::{Layout, PAYLOAD_ADDR, Sizes};
    use zerocopy::IntoBytes;
    let mut s: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let elf = pvh_elf(CODE, false, &[]);
    let elf_reloc = pvh_elf(CODE, true, &[]);
    let inner = gzip_stored(&elf);
    let bz_gzip = bzimage(&inner, elf.len());
    let bz_raw = bzimage(&elf, elf.len());

    s.push(("fuzz/corpus/start_info", "seed-v1".into(), {
        let mut d = vec![0u8];
        d.extend(start_info_memory(0x1000, 0x1000, 0x400));
        d
    }));
    s.push(("fuzz/corpus/start_info", "seed-offset".into(), {
        let mut d = vec![0x40u8];
        d.extend(start_info_memory(0x1000, 0x1040, 0x440));
        d
    }));
    s.push((
        "fuzz/corpus/translate",
        "seed-v1".into(),
        start_info_memory(0, 0, 0x400),
    ));
    s.push((
        "fuzz/corpus/translate",
        "seed-v1-long".into(),
        start_info_memory(0, 0, 0x480),
    ));
    s.push((
        "fuzz/corpus/bzimage_header",
        "seed-gzip".into(),
        bz_gzip.clone(),
    ));
    s.push(("fuzz/corpus/bzimage_header", "seed-xz-magic".into(), {
        bzimage(b"\xfd7zXZ\0 truncated", 0x1000)
    }));
    for name in ["dom0less.dts", "hyperlaunch.dts", "design.dts", "reg.dts"] {
        s.push((
            "fuzz/corpus/bootfdt",
            format!("seed-{}", name.trim_end_matches(".dts")),
            // The target's first byte picks the module numbering and the
            // host limit (2: from zero, 1 GiB); the tree follows.
            [&[2u8][..], &dtc(name)].concat(),
        ));
    }
    let sizes = Sizes {
        kernel: 0x400,
        setup: 0x200,
        kernel_align: 0x1000,
        initrd: Some(0x20),
        cmdline: Some(5),
    };
    let layout = Layout::plan(PAYLOAD_ADDR, &sizes).unwrap();
    let header = layout.header_for(&sizes, pvh_entry::SubarchPolicy::Pc);
    let mut mem = vec![0u8; (layout.end - PAYLOAD_ADDR) as usize];
    mem[..80].copy_from_slice(header.as_bytes());
    if let Some(c) = layout.cmdline {
        let at = (c - PAYLOAD_ADDR) as usize;
        mem[at..at + 5].copy_from_slice(b"quiet");
    }
    let mut sizes_seed = Vec::new();
    for v in [0x400u64, 0x200, 12, 0x20, 5] {
        sizes_seed.extend(v.to_le_bytes());
    }
    sizes_seed.push(3);
    s.push(("fuzz/corpus/payload", "seed-header".into(), mem));
    s.push(("fuzz/corpus/payload", "seed-sizes".into(), sizes_seed));
    let tables = pvh_acpi::build(&pvh_hypervisor::devices::acpi_platform(), 0, 2)
        .unwrap()
        .bytes;
    s.push(("fuzz/corpus/acpi", "seed-2-cpus".into(), tables));
    s.push((
        "fuzz/corpus/acpi",
        "seed-32-cpus".into(),
        pvh_acpi::build(&pvh_hypervisor::devices::acpi_platform(), 0, 32)
            .unwrap()
            .bytes,
    ));
    // A wrapped image in miniature: an ELF whose second PT_LOAD is a
    // payload (header, cmdline, a small bzImage) at PAYLOAD_ADDR.
    let kernel = bz_raw.clone();
    let wsizes = Sizes {
        kernel: kernel.len() as u64,
        setup: 0x400,
        kernel_align: 0x1000,
        initrd: None,
        cmdline: Some(5),
    };
    let wl = Layout::plan(PAYLOAD_ADDR, &wsizes).unwrap();
    let mut wmem = vec![0u8; (wl.end - PAYLOAD_ADDR) as usize];
    wmem[..80].copy_from_slice(
        wl.header_for(&wsizes, pvh_entry::SubarchPolicy::Pc)
            .as_bytes(),
    );
    let c = (wl.cmdline.unwrap() - PAYLOAD_ADDR) as usize;
    wmem[c..c + 5].copy_from_slice(b"quiet");
    let k = (wl.kernel - PAYLOAD_ADDR) as usize;
    wmem[k..k + kernel.len()].copy_from_slice(&kernel);
    s.push((
        "fuzz/corpus/inspect",
        "seed-pvh-elf".into(),
        elf_reloc.clone(),
    ));
    s.push((
        "fuzz/corpus/inspect",
        "seed-bzimage".into(),
        bz_gzip.clone(),
    ));
    s.push((
        "fuzz/corpus/inspect",
        "seed-wrapped".into(),
        pvh_elf(CODE, false, &[(PAYLOAD_ADDR, &wmem)]),
    ));
    s.push(("loader/fuzz/corpus/elf", "seed-pvh-elf".into(), elf));
    s.push((
        "loader/fuzz/corpus/elf",
        "seed-pvh-elf-reloc".into(),
        elf_reloc,
    ));
    for (sel, what) in [(0u8, "linux64"), (1, "pvh-unpack"), (2, "unpack")] {
        let mut d = vec![sel];
        d.extend(&bz_gzip);
        s.push(("loader/fuzz/corpus/bzimage", format!("seed-{what}-gzip"), d));
    }
    s
}

#[test]
fn seeds_are_accepted_by_their_parsers() {
    // The seeds start the fuzzer deep inside each format; check they are
    // what they claim, so a broken builder is caught here.
    for (dir, name, bytes) in seeds() {
        match dir {
            "fuzz/corpus/bzimage_header" | "fuzz/corpus/inspect"
                if name.contains("bzimage") || name.contains("gzip") =>
            {
                pvh_bootparams::BzImage::parse(&bytes).unwrap();
            }
            "loader/fuzz/corpus/elf" => {
                pvh_loader::ElfImage::parse(&bytes).unwrap();
            }
            "fuzz/corpus/inspect" => {
                let r = pvh_loader::inspect::inspect(&bytes);
                assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
                if name == "seed-wrapped" {
                    let w = r.wrap.expect("the payload is found");
                    assert_eq!(w.cmdline.as_deref(), Some("quiet"));
                    assert!(w.kernel_info.is_some());
                }
            }
            "loader/fuzz/corpus/bzimage" => {
                let bz = pvh_bootparams::BzImage::parse(&bytes[1..]).unwrap();
                let elf = pvh_loader::unpack(&bz).unwrap();
                pvh_loader::ElfImage::parse(&elf).unwrap();
            }
            _ => {}
        }
    }
}

#[test]
#[ignore = "writes the seed files into the corpus directories"]
fn write_seeds() {
    for (dir, name, bytes) in seeds() {
        let dir = root().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
