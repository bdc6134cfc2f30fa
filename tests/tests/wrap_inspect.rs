//! `pvh inspect` and `pvh wrap` on the real Debian kernel artifacts
//! (scripts/fetch-artifacts.sh): every expected value is read
//! independently of the code under test (`readelf -n`, raw header bytes,
//! object's ELF reader).

use object::Endianness;
use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use pvh_guests::harness::{artifacts_dir, skip_or_fail, which};
use pvh_loader::Kernel;
use pvh_loader::inspect::{Format, inspect};
use pvh_loader::wrap::{WrapError, wrap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

fn artifact(name: &str) -> Option<Vec<u8>> {
    let path = artifacts_dir().join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            skip_or_fail(&format!(
                "{} missing ({e}); run scripts/fetch-artifacts.sh",
                path.display()
            ));
            None
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// The descriptor bytes of the Xen note of type `ty`, from `readelf -n`.
fn readelf_xen_note(path: &std::path::Path, ty: u32) -> Option<Option<Vec<u8>>> {
    which("readelf")?;
    let out = Command::new("readelf").arg("-n").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let wanted = format!("(0x{ty:08x})");
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("Xen") && line.contains(&wanted) {
            let data = lines.next()?;
            let hex = data.split(':').nth(1)?;
            let bytes = hex
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            return Some(Some(bytes));
        }
    }
    Some(None)
}

#[test]
fn inspect_vmlinux_reports_the_notes_readelf_sees() {
    let Some(bytes) = artifact("vmlinux") else {
        return;
    };
    let path = artifacts_dir().join("vmlinux");
    let Some(entry_note) = readelf_xen_note(&path, 18) else {
        skip_or_fail("readelf not found (binutils)");
        return;
    };
    let entry_note = entry_note.expect("the Debian vmlinux has a PHYS32_ENTRY note");
    assert_eq!(entry_note.len(), 8, "Linux emits an 8-byte PHYS32_ENTRY");
    let expected = u64::from_le_bytes(entry_note.try_into().unwrap());
    let reloc_note = readelf_xen_note(&path, 19).unwrap();

    let report = inspect(&bytes);
    assert_eq!(report.format, Format::PvhElf);
    let elf = report.elf.as_ref().unwrap();
    assert_eq!(elf.class, "ELF64");
    assert_eq!(elf.machine, "x86_64");
    assert_eq!(elf.pvh_entry.map(u64::from), Some(expected));
    assert_eq!(elf.pvh_entry_size, Some(8));
    // Debian's 6.1 kernel predates PHYS32_RELOC; whatever readelf sees,
    // inspect must see the same.
    match reloc_note {
        None => assert_eq!(elf.phys32_reloc, None),
        Some(desc) => {
            let r = elf.phys32_reloc.expect("reloc reported");
            assert_eq!(r.align, u32_at(&desc, 0));
        }
    }
    assert!(report.wrap.is_none());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let text = report.to_text();
    assert!(
        text.contains(&format!(
            "pvh entry: {expected:#x} (PHYS32_ENTRY, 8-byte value)"
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["format"], "pvh-elf");
    assert_eq!(json["elf"]["pvh_entry"], expected);
}

#[test]
fn inspect_bzimage_reports_the_raw_header_fields() {
    let Some(b) = artifact("bzImage") else { return };
    let report = inspect(&b);
    assert_eq!(report.format, Format::Bzimage);
    let bz = report.bzimage.as_ref().unwrap();
    let version = u16_at(&b, 0x206);
    assert_eq!(bz.protocol_raw, version);
    assert_eq!(
        bz.protocol,
        format!("{}.{:02}", version >> 8, version & 0xff)
    );
    assert_eq!(bz.xloadflags, u16_at(&b, 0x236));
    assert_eq!(bz.init_size, u32_at(&b, 0x260));
    assert_eq!(bz.pref_address, u64_at(&b, 0x258));
    assert_eq!(bz.kernel_alignment, u32_at(&b, 0x230));
    assert_eq!(bz.relocatable, b[0x234] != 0);
    assert!(bz.xloadflags_names.iter().any(|n| n == "KERNEL_64"));
    // The payload's first bytes, found from the raw header.
    let setup = (usize::from(b[0x1f1].max(4)) + 1) * 512;
    let payload = &b[setup + u32_at(&b, 0x248) as usize..];
    let expected = if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        "other"
    };
    assert_eq!(bz.compression, expected);
    assert!(bz.boot_64bit);
    assert_eq!(bz.boot_64bit_error, None);
    // An old protocol (patched to 2.11): still a bzImage, not bootable.
    let mut old = b.clone();
    old[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
    let r = inspect(&old);
    assert!(!r.bootable);
    let bz = r.bzimage.unwrap();
    assert!(!bz.boot_64bit);
    assert!(bz.boot_64bit_error.unwrap().contains("0x020b"));
    // Older than anything the parser reads (2.01): named as a problem, in
    // the loader's words.
    old[0x206..0x208].copy_from_slice(&0x0201u16.to_le_bytes());
    let r = inspect(&old);
    assert_eq!(r.format, Format::Other);
    assert!(!r.bootable);
    assert_eq!(
        r.problems,
        ["kernel: not a usable bzImage: boot protocol 0x0201 is older than the required 0x0208"]
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["bzimage"]["init_size"], u32_at(&b, 0x260));
}

#[test]
fn inspect_other_bytes() {
    let report = inspect(b"not a kernel at all");
    assert_eq!(report.format, Format::Other);
    assert!(!report.bootable);
    assert_eq!(
        report.problems,
        ["kernel image is neither ELF nor bzImage (first bytes [6e, 6f, 74, 20])"]
    );
    let report = inspect(b"\x7fELF\x02\x01\x01");
    assert_eq!(report.format, Format::Other);
    assert!(!report.problems.is_empty());
}

/// (PT_LOAD paddr, bytes) and PT_NOTE bytes of an ELF, via object.
struct Elf {
    loads: Vec<(u64, u64, Vec<u8>)>,
    notes: Vec<Vec<u8>>,
}

fn read_elf(data: &[u8]) -> Elf {
    let h = FileHeader64::<Endianness>::parse(data).unwrap();
    let e = h.endian().unwrap();
    let mut elf = Elf {
        loads: vec![],
        notes: vec![],
    };
    for ph in h.program_headers(e, data).unwrap() {
        let bytes = ph.data(e, data).unwrap().to_vec();
        if ph.p_type(e) == PT_LOAD {
            elf.loads.push((ph.p_paddr(e), ph.p_memsz(e), bytes));
        } else if ph.p_type(e) == PT_NOTE {
            elf.notes.push(bytes);
        }
    }
    elf
}

fn bytes_at(elf: &Elf, addr: u64, len: usize) -> &[u8] {
    elf.loads
        .iter()
        .find_map(|(base, _, b)| {
            let off = usize::try_from(addr.checked_sub(*base)?).ok()?;
            b.get(off..off + len)
        })
        .unwrap_or_else(|| panic!("{len:#x} bytes at {addr:#x} not in any segment"))
}

#[test]
fn wrap_keeps_the_stub_and_embeds_kernel_initrd_and_cmdline() {
    let Some(kernel) = artifact("bzImage") else {
        return;
    };
    let stub = pvh_guests::STUB;
    let initrd: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let cmdline = "console=ttyS0 quiet wrapped=yes";
    let out = wrap(stub, &kernel, Some(&initrd), Some(cmdline)).unwrap();

    let s = read_elf(stub);
    let w = read_elf(&out.elf);
    // The stub's segments and note, unchanged.
    for load in &s.loads {
        assert!(
            w.loads.contains(load),
            "stub segment at {:#x} missing",
            load.0
        );
    }
    assert_eq!(w.notes, s.notes);
    assert_eq!(w.loads.len(), s.loads.len() + 2);
    // The header at 2 MiB, read by hand.
    let h = bytes_at(&w, 0x20_0000, 80);
    assert_eq!(&h[..8], b"PVHWRAP\0");
    // Version 2: the subarch policy at offset 76, PC (0) by default.
    assert_eq!(u32_at(h, 8), 2);
    assert_eq!(u32_at(h, 76), 0);
    let (k_addr, k_size) = (u64_at(h, 24), u64_at(h, 32));
    let (i_addr, i_size) = (u64_at(h, 40), u64_at(h, 48));
    let (c_addr, c_size) = (u64_at(h, 56), u64_at(h, 64));
    assert_eq!(k_size, kernel.len() as u64);
    assert_eq!(bytes_at(&w, k_addr, kernel.len()), &kernel[..]);
    // Protected-mode code on a kernel_alignment boundary.
    let setup = (u64::from(kernel[0x1f1].max(4)) + 1) * 512;
    assert_eq!((k_addr + setup) % u64::from(u32_at(&kernel, 0x230)), 0);
    assert_eq!(i_size, initrd.len() as u64);
    assert_eq!(bytes_at(&w, i_addr, initrd.len()), &initrd[..]);
    assert_eq!(c_size, cmdline.len() as u64);
    assert_eq!(
        bytes_at(&w, c_addr, cmdline.len() + 1),
        format!("{cmdline}\0").as_bytes()
    );
    // No part overlaps the stub.
    let stub_end = s.loads.iter().map(|(a, m, _)| a + m).max().unwrap();
    assert!(stub_end <= 0x20_0000);

    // inspect sees the payload and the embedded kernel, and boots it.
    let r = inspect(&out.elf);
    assert_eq!(r.format, Format::PvhElf);
    assert!(r.bootable, "{:?}", r.problems);
    assert_eq!(r.wrap.as_ref().unwrap().subarch, "pc");
    let wi = r.wrap.as_ref().expect("payload reported");
    assert_eq!(wi.kernel, (k_addr, k_size));
    assert_eq!(wi.initrd, Some((i_addr, i_size)));
    assert_eq!(wi.cmdline.as_deref(), Some(cmdline));
    assert_eq!(
        wi.kernel_info.as_ref().unwrap().init_size,
        u32_at(&kernel, 0x260)
    );
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // The loader's ELF checks accept it.
    pvh_loader::ElfImage::parse(&out.elf).expect("loader accepts the wrapped ELF");

    // readelf agrees on the entry note.
    if which("readelf").is_some() {
        let path = std::env::temp_dir().join(format!("pvh-wrap-test-{}.elf", std::process::id()));
        std::fs::write(&path, &out.elf).unwrap();
        let note = readelf_xen_note(&path, 18).unwrap().expect("note kept");
        let _ = std::fs::remove_file(&path);
        let stub_entry = r.elf.as_ref().unwrap().pvh_entry.unwrap();
        assert_eq!(u32_at(&note, 0), stub_entry);
    }
}

#[test]
fn wrap_without_extras_has_no_initrd_or_cmdline() {
    let Some(kernel) = artifact("bzImage") else {
        return;
    };
    let out = wrap(pvh_guests::STUB, &kernel, None, None).unwrap();
    let w = read_elf(&out.elf);
    let h = bytes_at(&w, 0x20_0000, 80);
    assert_eq!((u64_at(h, 40), u64_at(h, 56)), (0, 0));
    let r = inspect(&out.elf);
    assert_eq!(r.wrap.as_ref().unwrap().initrd, None);
    assert_eq!(r.wrap.as_ref().unwrap().cmdline, None);
}

#[test]
fn wrap_rejects_bad_input_with_named_errors() {
    let stub = pvh_guests::STUB;
    let e = wrap(stub, b"\x7fELF and the rest", None, None).unwrap_err();
    assert!(matches!(e, WrapError::KernelIsElf), "{e}");
    let e = wrap(stub, &[0u8; 4096], None, None).unwrap_err();
    assert!(matches!(e, WrapError::Kernel(_)), "{e}");
    assert!(e.to_string().contains("boot_flag"), "{e}");
    // A stub that is not an ELF.
    let e = wrap(b"garbage", &[0u8; 4096], None, None).unwrap_err();
    assert!(matches!(e, WrapError::BadStub(_)), "{e}");
    let Some(kernel) = artifact("bzImage") else {
        return;
    };
    let long = "x".repeat(u32_at(&kernel, 0x238) as usize + 1);
    let e = wrap(stub, &kernel, None, Some(&long)).unwrap_err();
    assert!(
        matches!(
            e,
            WrapError::Kernel(pvh_entry::linux::LinuxBootError::CmdlineTooLong { .. })
        ),
        "{e}"
    );
    let e = wrap(stub, &kernel, None, Some("a\0b")).unwrap_err();
    assert!(matches!(e, WrapError::CmdlineNul), "{e}");
    // A protocol too old for the 64-bit entry: patch the version to 2.11.
    let mut old = kernel.clone();
    old[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
    let e = wrap(stub, &old, None, None).unwrap_err();
    assert!(e.to_string().contains("older than"), "{e}");
}

#[test]
fn the_cli_wraps_and_inspects() {
    let Some(_) = artifact("bzImage") else { return };
    let dir = std::env::temp_dir().join(format!("pvh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join("w.elf");
    let bz = artifacts_dir().join("bzImage");
    let args: Vec<OsString> = vec![
        "pvh".into(),
        "wrap".into(),
        bz.into(),
        "--cmdline".into(),
        "a=b".into(),
        "-o".into(),
        out.clone().into(),
    ];
    let status = pvh_hypervisor::cli::main_with(args);
    assert_eq!(status, pvh_hypervisor::output::Exit::Status(0));
    let r = inspect(&std::fs::read(&out).unwrap());
    assert_eq!(r.wrap.unwrap().cmdline.as_deref(), Some("a=b"));
    let missing = dir.join("missing");
    let args: Vec<OsString> = vec!["pvh".into(), "inspect".into(), missing.into()];
    let status = pvh_hypervisor::cli::main_with(args);
    assert_eq!(status.code(), pvh_hypervisor::status::BAD_INPUT);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Images `pvh boot` refuses: an AArch64 ELF, overlapping segments, two
/// different entry notes, no entry note.
fn refused_elves() -> Vec<(&'static str, Vec<u8>)> {
    use pvh_tests::images::{Load, SynthElf};
    vec![
        (
            "aarch64",
            SynthElf {
                machine: 183,
                ..SynthElf::pvh()
            }
            .build(),
        ),
        (
            "overlap",
            SynthElf {
                loads: vec![Load::code(0x10_0000, 0x100), Load::code(0x10_0080, 0x100)],
                ..SynthElf::pvh()
            }
            .build(),
        ),
        (
            "two entries",
            SynthElf {
                entries: vec![0x10_0000, 0x10_0010],
                ..SynthElf::pvh()
            }
            .build(),
        ),
        (
            "no entry",
            SynthElf {
                entries: vec![],
                ..SynthElf::pvh()
            }
            .build(),
        ),
    ]
}

fn boot_error(kernel: &[u8]) -> Option<pvh_loader::LoadError> {
    let ram = pvh_loader::GuestRam::new(64 << 20).unwrap();
    let config = pvh_loader::BootConfig::new(Kernel::pvh_elf(kernel));
    pvh_loader::plan(&ram, &config).err()
}

#[test]
fn inspect_says_not_bootable_exactly_when_boot_refuses() {
    use pvh_tests::images::SynthElf;
    let dir = pvh_tests::scratch_dir("inspect-verdict");
    let good = SynthElf::pvh().build();
    assert_eq!(boot_error(&good), None);
    let r = inspect(&good);
    assert!(r.bootable && r.problems.is_empty(), "{:?}", r.problems);
    for (name, bytes) in refused_elves() {
        let refused = boot_error(&bytes).unwrap_or_else(|| panic!("{name}: boot accepts"));
        let r = inspect(&bytes);
        assert!(!r.bootable, "{name}");
        // The first problem is boot's error, word for word.
        assert_eq!(r.problems[0], refused.to_string(), "{name}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["bootable"], false, "{name}");
        assert_eq!(json["problems"][0], refused.to_string(), "{name}");
        // The command's status is boot's: BAD_INPUT.
        let path = dir.join(name.replace(' ', "-"));
        std::fs::write(&path, &bytes).unwrap();
        let args: Vec<OsString> = vec!["pvh".into(), "inspect".into(), path.into()];
        assert_eq!(
            pvh_hypervisor::cli::main_with(args),
            pvh_hypervisor::status::BAD_INPUT,
            "{name}"
        );
    }
    let path = dir.join("good");
    std::fs::write(&path, &good).unwrap();
    let args: Vec<OsString> = vec!["pvh".into(), "inspect".into(), path.into()];
    assert_eq!(pvh_hypervisor::cli::main_with(args), 0);
}

#[test]
fn wrap_refuses_stubs_the_loader_refuses() {
    use pvh_loader::wrap::MAX_PHNUM;
    use pvh_tests::images::{SynthBz, SynthElf};
    let kernel = SynthBz::default().build();
    // A synthetic stub the loader accepts wraps, and the output boots.
    let out = wrap(&SynthElf::pvh().build(), &kernel, None, None).unwrap();
    assert_eq!(boot_error(&out.elf), None);
    for (name, stub) in refused_elves() {
        let refused = boot_error(&stub).unwrap();
        match wrap(&stub, &kernel, None, None) {
            Err(WrapError::BadStub(e)) => assert_eq!(e, refused, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // 65,534 program headers: the loader takes them, but with the payload's
    // two the output's e_phnum would overflow (0xffff means "see section
    // 0"): refused, not written with e_phnum 0.
    let many = SynthElf {
        null_headers: 65_534 - 2,
        ..SynthElf::pvh()
    }
    .build();
    assert_eq!(u16_at(&many, 0x38), 65_534);
    assert_eq!(boot_error(&many), None);
    match wrap(&many, &kernel, None, None) {
        Err(WrapError::TooManySegments { count, max }) => {
            assert_eq!((count, max), (65_534, MAX_PHNUM - 2));
        }
        other => panic!("{other:?}"),
    }
    // One fewer fits exactly.
    let fits = SynthElf {
        null_headers: 65_532 - 2,
        ..SynthElf::pvh()
    }
    .build();
    let out = wrap(&fits, &kernel, None, None).unwrap();
    assert_eq!(u16_at(&out.elf, 0x38), 0xfffe);
}

#[test]
fn wrap_subarch_goes_into_the_payload_and_inspect_reads_it() {
    use pvh_loader::wrap::{WrapOptions, wrap_with};
    use pvh_tests::images::SynthBz;
    let kernel = SynthBz::default().build();
    let options = WrapOptions::new().subarch(pvh_entry::SubarchPolicy::Xen);
    let out = wrap_with(pvh_guests::STUB, &kernel, &options).unwrap();
    let w = read_elf(&out.elf);
    let h = bytes_at(&w, 0x20_0000, 80);
    assert_eq!((u32_at(h, 8), u32_at(h, 76)), (2, 2), "version 2, XEN");
    let r = inspect(&out.elf);
    assert!(r.bootable, "{:?}", r.problems);
    assert_eq!(r.wrap.unwrap().subarch, "xen");
    // The CLI flag.
    let dir = pvh_tests::scratch_dir("wrap-subarch");
    let (bz, elf) = (dir.join("bz"), dir.join("w.elf"));
    std::fs::write(&bz, &kernel).unwrap();
    let args: Vec<OsString> = vec![
        "pvh".into(),
        "wrap".into(),
        bz.into(),
        "--subarch".into(),
        "xen".into(),
        "-o".into(),
        elf.clone().into(),
    ];
    assert_eq!(pvh_hypervisor::cli::main_with(args), 0);
    assert_eq!(
        inspect(&std::fs::read(&elf).unwrap()).wrap.unwrap().subarch,
        "xen"
    );
}
