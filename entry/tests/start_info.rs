//! The start_info writer and reader: round trips, and every rejection.

use proptest::prelude::*;
use pvh_entry::reader::CmdlineProblem;
use pvh_entry::writer::Part;
use pvh_entry::*;

const BASE: u64 = 0x1000;
const SIZE: usize = 0x10_0000;

fn memory() -> SliceMemory<Vec<u8>> {
    SliceMemory::new(BASE, vec![0u8; SIZE])
}

fn sample_spec<'a>(modules: &'a [ModuleSpec<'a>], memmap: &'a [MemmapEntry]) -> StartInfoSpec<'a> {
    StartInfoSpec::new(1)
        .flags(SifFlags::PRIVILEGED | SifFlags::from_bits_retain(1 << 20))
        .cmdline(Some(b"console=ttyS0 root=/dev/vda"))
        .rsdp_paddr(0xe_0000)
        .modules(modules)
        .memmap(memmap)
}

#[test]
fn version_1_round_trip() {
    let modules = [
        ModuleSpec::new(0x8_0000, 0x1000).cmdline(Some(b"initrd")),
        ModuleSpec::new(0x9_0000, 0x10),
    ];
    let memmap = [
        MemmapEntry::new(0, 0x9_fc00, MemmapType::RAM),
        MemmapEntry::new(0x10_0000, 0x1000_0000, MemmapType::RAM),
        MemmapEntry::new(0xfee0_0000, 0x1000, MemmapType(0xf000_0002)),
    ];
    let spec = sample_spec(&modules, &memmap);
    let mut mem = memory();
    let (placement, size) = Placement::packed(0x2000, &spec).unwrap();
    assert_eq!(size, 56 + 2 * 32 + 3 * 24 + 28 + 7);
    let written = write_start_info(&mut mem, &spec, &placement).unwrap();
    assert_eq!(written.header.magic, 0x336e_c578);

    // Bytes on the wire, independently of the reader.
    let raw = &mem.bytes()[0x1000..0x1000 + 56];
    assert_eq!(&raw[0..4], &0x336e_c578u32.to_le_bytes());
    assert_eq!(&raw[12..16], &2u32.to_le_bytes());
    assert_eq!(&raw[48..52], &3u32.to_le_bytes());

    let view = StartInfoView::read(&mem, 0x2000).unwrap();
    let owned = view.to_owned();
    assert_eq!(owned.version, 1);
    assert_eq!(owned.flags.bits(), 1 | 1 << 20);
    assert_eq!(
        owned.cmdline.as_deref(),
        Some(&b"console=ttyS0 root=/dev/vda"[..])
    );
    assert_eq!(owned.rsdp_paddr, 0xe_0000);
    assert_eq!(owned.modules.len(), 2);
    assert_eq!(owned.modules[0].cmdline.as_deref(), Some(&b"initrd"[..]));
    assert_eq!(owned.modules[1].cmdline, None);
    assert_eq!(owned.modules[1].size, 0x10);
    assert_eq!(owned.memmap.as_deref(), Some(&memmap[..]));
    let mut buf = [0u8; 7];
    assert_eq!(view.read_cmdline(&mut buf), Some(&b"console"[..]));
}

#[test]
fn version_0_is_48_bytes_and_has_no_map() {
    let spec = StartInfoSpec::new(0).cmdline(Some(b"x"));
    // Put the header in the last 48 bytes of memory: a version-0 reader
    // must not touch byte 48.
    let top = BASE + SIZE as u64 - 48;
    let placement = Placement {
        start_info: top,
        modlist: 0,
        memmap: 0,
        strings: 0x3000,
    };
    let mut mem = memory();
    let written = write_start_info(&mut mem, &spec, &placement).unwrap();
    assert_eq!(written.sizes.start_info, 48);
    let view = StartInfoView::read(&mem, top).unwrap();
    assert_eq!(view.version(), 0);
    assert_eq!(view.memmap_len(), 0);
    assert_eq!(view.to_owned().memmap, None);
}

fn header_at(mem: &mut SliceMemory<Vec<u8>>, addr: u64, info: &StartInfo) {
    mem.write(addr, zerocopy::IntoBytes::as_bytes(info))
        .unwrap();
}

fn base_header() -> StartInfo {
    StartInfo {
        magic: START_INFO_MAGIC,
        version: 1,
        ..Default::default()
    }
}

#[test]
fn reader_rejects_with_typed_errors() {
    let mut mem = memory();
    let at = 0x2000;
    let check = |mem: &SliceMemory<Vec<u8>>, expected: ReadError| {
        assert_eq!(StartInfoView::read(mem, at).unwrap_err(), expected);
    };

    header_at(
        &mut mem,
        at,
        &StartInfo {
            magic: 0x1234,
            ..base_header()
        },
    );
    check(&mem, ReadError::BadMagic(0x1234));
    assert_eq!(
        StartInfoView::read(&mem, 0x10).unwrap_err(),
        ReadError::HeaderOutOfRange(0x10)
    );

    header_at(
        &mut mem,
        at,
        &StartInfo {
            nr_modules: u32::MAX,
            modlist_paddr: 0x3000,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::TooManyModules {
            count: u32::MAX,
            max: Limits::DEFAULT.max_modules,
        },
    );

    header_at(
        &mut mem,
        at,
        &StartInfo {
            nr_modules: 2,
            ..base_header()
        },
    );
    check(&mem, ReadError::NoModuleList(2));

    header_at(
        &mut mem,
        at,
        &StartInfo {
            nr_modules: 2,
            modlist_paddr: BASE + SIZE as u64 - 40,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::ModuleListOutOfRange {
            paddr: BASE + SIZE as u64 - 40,
            count: 2,
        },
    );

    // A module whose contents run past memory.
    let entry = ModlistEntry {
        paddr: 0x5000,
        size: SIZE as u64,
        cmdline_paddr: 0,
        reserved: 0,
    };
    mem.write(0x3000, zerocopy::IntoBytes::as_bytes(&entry))
        .unwrap();
    header_at(
        &mut mem,
        at,
        &StartInfo {
            nr_modules: 1,
            modlist_paddr: 0x3000,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::ModuleOutOfRange {
            index: 0,
            paddr: 0x5000,
            size: SIZE as u64,
        },
    );

    header_at(
        &mut mem,
        at,
        &StartInfo {
            memmap_entries: 9000,
            memmap_paddr: 0x3000,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::TooManyMemmapEntries {
            count: 9000,
            max: 8192,
        },
    );
    header_at(
        &mut mem,
        at,
        &StartInfo {
            memmap_entries: 3,
            ..base_header()
        },
    );
    check(&mem, ReadError::NoMemmap(3));
    header_at(
        &mut mem,
        at,
        &StartInfo {
            memmap_entries: 3,
            memmap_paddr: u64::MAX - 8,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::MemmapOutOfRange {
            paddr: u64::MAX - 8,
            count: 3,
        },
    );

    // Command lines: unterminated within the limit, and running off memory.
    mem.write(0x4000, &[b'a'; 0x200]).unwrap();
    header_at(
        &mut mem,
        at,
        &StartInfo {
            cmdline_paddr: 0x4000,
            ..base_header()
        },
    );
    let limits = Limits::DEFAULT.max_cmdline(0x100);
    assert_eq!(
        StartInfoView::read_with_limits(&mem, at, &limits).unwrap_err(),
        ReadError::Cmdline {
            which: Which::Main,
            paddr: 0x4000,
            problem: CmdlineProblem::Unterminated(0x100)
        }
    );
    let end = BASE + SIZE as u64;
    mem.write(end - 10, &[b'b'; 10]).unwrap();
    header_at(
        &mut mem,
        at,
        &StartInfo {
            cmdline_paddr: end - 10,
            ..base_header()
        },
    );
    check(
        &mem,
        ReadError::Cmdline {
            which: Which::Main,
            paddr: end - 10,
            problem: CmdlineProblem::OutOfRange,
        },
    );
    // ... but a NUL just before the end of memory is fine.
    mem.write(end - 1, &[0]).unwrap();
    let view = StartInfoView::read(&mem, at).unwrap();
    assert_eq!(view.cmdline(), Some((end - 10, 9)));

    // A module command line is named by its index.
    let entry = ModlistEntry {
        paddr: 0x5000,
        size: 1,
        cmdline_paddr: 0x4000,
        reserved: 0,
    };
    mem.write(0x3000, zerocopy::IntoBytes::as_bytes(&entry))
        .unwrap();
    header_at(
        &mut mem,
        at,
        &StartInfo {
            nr_modules: 1,
            modlist_paddr: 0x3000,
            ..base_header()
        },
    );
    assert!(matches!(
        StartInfoView::read_with_limits(&mem, at, &limits).unwrap_err(),
        ReadError::Cmdline {
            which: Which::Module(0),
            ..
        }
    ));
}

#[test]
fn writer_rejects_with_typed_errors() {
    let mut mem = memory();
    let modules = [ModuleSpec::new(0x2010, 0x10)];
    let spec = StartInfoSpec::new(1).modules(&modules);
    let (placement, _) = Placement::packed(0x2000, &spec).unwrap();
    assert!(matches!(
        write_start_info(&mut mem, &spec, &placement),
        Err(WriteError::Overlap {
            first: Part::StartInfo,
            second: Part::Module(0),
            ..
        })
    ));

    let spec = StartInfoSpec::new(1).cmdline(Some(b"a\0b"));
    assert_eq!(
        Placement::packed(0x2000, &spec).unwrap_err(),
        WriteError::NulInCmdline(Which::Main)
    );
    let map = [MemmapEntry::new(0, 1, MemmapType::RAM)];
    let spec = StartInfoSpec::new(0).memmap(&map);
    assert_eq!(
        Placement::packed(0x2000, &spec).unwrap_err(),
        WriteError::MemmapInVersion0(1)
    );
    let spec = StartInfoSpec::new(2);
    assert_eq!(
        Placement::packed(0x2000, &spec).unwrap_err(),
        WriteError::UnsupportedVersion(2)
    );

    let spec = StartInfoSpec::new(1).cmdline(Some(b"abc")).memmap(&map);
    let overlapping = Placement {
        start_info: 0x2000,
        modlist: 0,
        memmap: 0x2030,
        strings: 0x3000,
    };
    assert!(matches!(
        write_start_info(&mut mem, &spec, &overlapping),
        Err(WriteError::Overlap {
            first: Part::StartInfo,
            second: Part::Memmap,
            ..
        })
    ));
    let outside = Placement {
        start_info: 0x2000,
        modlist: 0,
        memmap: 0x2100,
        strings: BASE + SIZE as u64 - 2,
    };
    assert!(matches!(
        write_start_info(&mut mem, &spec, &outside),
        Err(WriteError::Memory {
            part: Part::Strings,
            ..
        })
    ));
    // Nothing carried the magic: the header is written last.
    assert!(StartInfoView::read(&mem, 0x2000).is_err());
}

fn cmdline() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(1u8..=255, 0..200))
}

#[derive(Debug, Clone)]
struct Case {
    version: u32,
    flags: u32,
    cmdline: Option<Vec<u8>>,
    rsdp: u64,
    modules: Vec<(u64, u64, Option<Vec<u8>>)>,
    memmap: Vec<(u64, u64, u32)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0u32..=1,
        any::<u32>(),
        cmdline(),
        any::<u64>(),
        proptest::collection::vec((0x8_0000u64..0x9_0000, 0u64..0x1000, cmdline()), 0..20),
        proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u32>()), 0..100),
    )
        .prop_map(|(version, flags, cmdline, rsdp, modules, memmap)| Case {
            version,
            flags,
            cmdline,
            rsdp,
            modules,
            memmap: if version == 0 { Vec::new() } else { memmap },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 2000 }))]

    #[test]
    fn write_then_read_is_identity(c in case(), base in 0x1000u64..0x4_0000) {
        let modules: Vec<ModuleSpec<'_>> = c.modules.iter()
            .map(|(paddr, size, cmdline)| ModuleSpec::new(*paddr, *size).cmdline(cmdline.as_deref()))
            .collect();
        let memmap: Vec<MemmapEntry> = c.memmap.iter().map(|&(a, s, t)| MemmapEntry::new(a, s, MemmapType(t))).collect();
        let spec = StartInfoSpec::new(c.version)
            .flags(SifFlags::from_bits_retain(c.flags))
            .cmdline(c.cmdline.as_deref())
            .rsdp_paddr(c.rsdp)
            .modules(&modules)
            .memmap(&memmap);
        let base = base & !7;
        let mut mem = memory();
        let (placement, _) = Placement::packed(base, &spec).unwrap();
        write_start_info(&mut mem, &spec, &placement).unwrap();
        let owned = StartInfoView::read(&mem, base).unwrap().to_owned();
        prop_assert_eq!(owned.version, c.version);
        prop_assert_eq!(owned.flags.bits(), c.flags);
        prop_assert_eq!(owned.cmdline, c.cmdline);
        prop_assert_eq!(owned.rsdp_paddr, c.rsdp);
        prop_assert_eq!(owned.modules.len(), c.modules.len());
        for (got, want) in owned.modules.iter().zip(&c.modules) {
            prop_assert_eq!((got.paddr, got.size, &got.cmdline), (want.0, want.1, &want.2));
        }
        let want_map = (!memmap.is_empty()).then_some(memmap);
        prop_assert_eq!(owned.memmap, want_map);
    }

    #[test]
    fn arbitrary_memory_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 48..2048),
        magic in any::<bool>(),
        at in 0usize..64,
    ) {
        // Half the cases carry the magic so that the reader gets past it and
        // chases pointers made of random bytes.
        if magic {
            bytes[..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        }
        let mem = SliceMemory::new(0x1000, bytes);
        if let Ok(view) = StartInfoView::read(&mem, 0x1000 + at as u64) {
            let owned = view.to_owned();
            prop_assert!(owned.modules.len() as u32 <= Limits::DEFAULT.max_modules);
            let mut buf = [0u8; 32];
            let _ = view.read_cmdline(&mut buf);
        }
    }

    #[test]
    fn pointers_into_small_memory_never_panic(
        counts in (0u32..5000, 0u32..10_000),
        addrs in proptest::collection::vec(0x1000u64..0x1800, 4),
        version in 0u32..3,
        filler in any::<u8>(),
    ) {
        let mut mem = SliceMemory::new(0x1000, vec![filler; 0x800]);
        let info = StartInfo {
            magic: START_INFO_MAGIC, version, flags: 0, nr_modules: counts.0,
            modlist_paddr: addrs[0], cmdline_paddr: addrs[1], rsdp_paddr: 0,
            memmap_paddr: addrs[2], memmap_entries: counts.1, reserved: 0,
        };
        mem.write(addrs[3] & !7, zerocopy::IntoBytes::as_bytes(&info)).ok();
        let _ = StartInfoView::read(&mem, addrs[3] & !7).map(|v| v.to_owned());
    }
}

/// The writer refuses exactly what the reader would: at each of
/// `Limits::DEFAULT`'s limits a written start_info reads back; one past
/// it, nothing is written (issue 14: 4,097 modules and 64 KiB command lines
/// were written and then refused by pvh's own reader).
#[test]
fn writer_and_reader_share_the_limits() {
    let limits = Limits::DEFAULT;
    let max_mods = limits.max_modules as usize;
    let max_map = limits.max_memmap_entries as usize;
    let max_cmd = limits.max_cmdline as usize;
    let long = vec![b'x'; max_cmd - 1];
    let too_long = vec![b'x'; max_cmd];
    let module = |cmdline: Option<&'static [u8]>| ModuleSpec::new(0x200_0000, 1).cmdline(cmdline);
    let mods = vec![module(None); max_mods];
    let map = vec![MemmapEntry::new(0x200_0000, 0x1000, MemmapType::RAM); max_map];
    // At the limits: written, and read back by the default reader.
    let spec = StartInfoSpec::new(1)
        .cmdline(Some(&long))
        .modules(&mods)
        .memmap(&map);
    let mut mem = SliceMemory::new(0, vec![0u8; 0x200_1000]);
    let (placement, _) = Placement::packed(0x1000, &spec).unwrap();
    write_start_info(&mut mem, &spec, &placement).unwrap();
    let view = StartInfoView::read(&mem, 0x1000).unwrap();
    assert_eq!(view.module_count() as usize, max_mods);
    assert_eq!(view.memmap_len() as usize, max_map);
    assert_eq!(view.cmdline().unwrap().1 as usize, max_cmd - 1);

    // One past each limit: refused by the writer with the reader's limit.
    let over = |spec: &StartInfoSpec<'_>| Placement::packed(0x1000, spec).unwrap_err();
    let mods_over = vec![module(None); max_mods + 1];
    let e = over(&spec.modules(&mods_over));
    assert_eq!(
        e,
        WriteError::OverReaderLimit {
            what: Limited::Modules,
            value: max_mods as u64 + 1,
            max: limits.max_modules
        }
    );
    assert!(
        e.to_string()
            .contains("the module count is 4097, more than the 4096 the start_info reader accepts"),
        "{e}"
    );
    let map_over = vec![map[0]; max_map + 1];
    assert_eq!(
        over(&spec.memmap(&map_over)),
        WriteError::OverReaderLimit {
            what: Limited::MemmapEntries,
            value: max_map as u64 + 1,
            max: limits.max_memmap_entries
        }
    );
    assert_eq!(
        over(&spec.cmdline(Some(&too_long))),
        WriteError::OverReaderLimit {
            what: Limited::Cmdline(Which::Main),
            value: max_cmd as u64 + 1,
            max: limits.max_cmdline
        }
    );
    let one = [
        module(None),
        ModuleSpec::new(0x200_0000, 1).cmdline(Some(&too_long)),
    ];
    assert_eq!(
        over(&spec.modules(&one)),
        WriteError::OverReaderLimit {
            what: Limited::Cmdline(Which::Module(1)),
            value: max_cmd as u64 + 1,
            max: limits.max_cmdline
        }
    );
}
