//! The start_info → zero page translation.

use proptest::prelude::*;
use pvh_entry::bootparams::{
    BootParams, E820Entry, E820Type, HardwareSubarch, SetupData, SetupDataType, SetupHeader,
    XLoadFlags,
};
use pvh_entry::memory::read_obj;
use pvh_entry::zeropage::{e820_ext_size, e820_scratch_len, write_e820_ext};
use pvh_entry::*;
use std::collections::BTreeMap;
use zerocopy::{FromZeros, IntoBytes};

const MEM_BASE: u64 = 0;
const MEM_SIZE: usize = 0x20_0000;
const INFO: u64 = 0x6000;

/// Guest memory holding a start_info written from `spec` at `INFO`.
fn guest(spec: &StartInfoSpec<'_>) -> SliceMemory<Vec<u8>> {
    let mut mem = SliceMemory::new(MEM_BASE, vec![0u8; MEM_SIZE]);
    let (placement, _) = Placement::packed(INFO, spec).unwrap();
    write_start_info(&mut mem, spec, &placement).unwrap();
    mem
}

fn typical_map() -> Vec<MemmapEntry> {
    vec![
        MemmapEntry::new(0x10_0000, 0x7ff0_0000, MemmapType::RAM),
        MemmapEntry::new(0, 0x9_fc00, MemmapType::RAM),
        MemmapEntry::new(0x9_fc00, 0x400, MemmapType::RESERVED),
        MemmapEntry::new(0xf_0000, 0x1_0000, MemmapType::RESERVED),
        MemmapEntry::new(0xfeff_c000, 0x4000, MemmapType(0xf000_0001)),
        MemmapEntry::new(0x1_0000_0000, 0x1000, MemmapType::DISABLED),
    ]
}

#[test]
fn fields_follow_the_start_info() {
    let modules = [
        ModuleSpec::new(0x1_2345_6000, 0x1_0000_0010),
        ModuleSpec::new(0x9_0000, 0x100),
    ];
    let map = typical_map();
    let spec = StartInfoSpec::new(1)
        .cmdline(Some(b"console=hvc0"))
        .rsdp_paddr(0xf_e000)
        .modules(&modules)
        .memmap(&map);
    let spec_small = spec.modules(&modules[1..]);
    let mem = guest(&spec_small);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    let zp = translate_owned(&info, &TranslateOptions::default()).unwrap();
    let bp = &zp.params;
    let page = bp.as_page();
    // Offsets from bootparam.h, checked on the bytes.
    let (cmdline_addr, _) = info.cmdline().unwrap();
    assert_eq!(&page[0x228..0x22c], &(cmdline_addr as u32).to_le_bytes());
    assert_eq!(&page[0xc8..0xcc], &0u32.to_le_bytes());
    assert_eq!(&page[0x70..0x78], &0xf_e000u64.to_le_bytes());
    assert_eq!(page[0x210], 0xff, "type_of_loader");
    assert_eq!(page[0x1ef], 0, "sentinel");
    assert_eq!(&page[0x1fe..0x200], &[0x55, 0xaa]);
    assert_eq!(&page[0x202..0x206], b"HdrS");
    assert_eq!(&page[0x206..0x208], &0x020cu16.to_le_bytes());
    assert_eq!(
        &page[0x218..0x21c],
        &0x9_0000u32.to_le_bytes(),
        "ramdisk_image = module 0"
    );
    assert_eq!(&page[0x21c..0x220], &0x100u32.to_le_bytes());
    assert_eq!(&page[0x23c..0x240], &0u32.to_le_bytes(), "subarch PC");
    assert_eq!(zp.translation.initrd, Some((0x9_0000, 0x100)));
    // e820 sorted; the OEM and DISABLED types became RESERVED; the ISA
    // window (only partly reserved in the map) was added.
    let e820: Vec<(u64, u64, u32)> = bp
        .e820()
        .iter()
        .map(|e| (e.addr, e.size, e.type_.0))
        .collect();
    assert_eq!(
        e820,
        vec![
            (0, 0x9_fc00, 1),
            (0x9_fc00, 0x400, 2),
            (0xa_0000, 0x6_0000, 2),
            (0xf_0000, 0x1_0000, 2),
            (0x10_0000, 0x7ff0_0000, 1),
            (0xfeff_c000, 0x4000, 2),
            (0x1_0000_0000, 0x1000, 2),
        ]
    );
    assert_eq!(page[0x1e8], 7);
}

#[test]
fn initrd_above_4g_uses_the_ext_fields() {
    let modules = [ModuleSpec::new(0x9_0000, 0x10)];
    let map = typical_map();
    let spec = StartInfoSpec::new(1).modules(&modules).memmap(&map);
    let mut mem = guest(&spec);
    // Rewrite module 0's entry to point above 4 GiB; the reader would reject
    // it as outside this small memory, so check the accessor instead.
    let mut bp = BootParams::zeroed();
    bp.set_ramdisk(0x1_2345_6000, 0x1_0000_0010);
    let page = bp.as_page();
    assert_eq!(&page[0x218..0x21c], &0x2345_6000u32.to_le_bytes());
    assert_eq!(&page[0xc0..0xc4], &1u32.to_le_bytes());
    assert_eq!(&page[0x21c..0x220], &0x10u32.to_le_bytes());
    assert_eq!(&page[0xc4..0xc8], &1u32.to_le_bytes());
    let _ = &mut mem;
}

#[test]
fn subarch_xen_points_at_the_start_info() {
    let map = typical_map();
    let spec = StartInfoSpec::new(1).memmap(&map);
    let mem = guest(&spec);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    let options = TranslateOptions::default().subarch(SubarchPolicy::Xen);
    let bp = translate_owned(&info, &options).unwrap().params;
    assert_eq!({ bp.hdr.hardware_subarch }, HardwareSubarch(2));
    assert_eq!(&bp.as_page()[0x240..0x248], &INFO.to_le_bytes());
    assert_eq!(bp.cmd_line_ptr(), 0, "no cmdline, no pointer");
    assert_eq!(bp.ramdisk_image(), 0, "no modules, no initrd");
}

#[test]
fn kernel_setup_header_is_kept_where_not_translated() {
    let map = typical_map();
    let modules = [ModuleSpec::new(0x9_0000, 0x100)];
    let spec = StartInfoSpec::new(1).memmap(&map).modules(&modules);
    let mem = guest(&spec);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    let mut hdr = SetupHeader::new_zeroed();
    hdr.setup_sects = 27;
    hdr.version = 0x020f;
    hdr.init_size = 0x123_4000;
    hdr.type_of_loader = 0x21;
    hdr.xloadflags = XLoadFlags::KERNEL_64.bits();
    hdr.initrd_addr_max = 0x7fff_ffff;
    let options = TranslateOptions::default().setup_header(Some(&hdr));
    let bp = translate_owned(&info, &options).unwrap().params;
    assert_eq!({ bp.hdr.setup_sects }, 27);
    assert_eq!({ bp.hdr.version }, 0x020f);
    assert_eq!({ bp.hdr.init_size }, 0x123_4000);
    assert_eq!({ bp.hdr.type_of_loader }, 0xff);
    assert_eq!(
        { bp.hdr.boot_flag },
        0,
        "copied from the header as given, not invented"
    );

    // The translation takes the initrd as given: whether the kernel can
    // reach it is the boot policy's question (`pvh_entry::linux`), asked
    // once by every Linux caller, not here.
    hdr.initrd_addr_max = 0x9_0080;
    let options = TranslateOptions::default().setup_header(Some(&hdr));
    assert!(translate_owned(&info, &options).is_ok());
}

#[test]
fn version_0_needs_a_supplied_map() {
    let spec = StartInfoSpec::new(0).cmdline(Some(b"dom0"));
    let mem = guest(&spec);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    assert_eq!(
        translate_owned(&info, &TranslateOptions::default()).unwrap_err(),
        TranslateError::NoMemoryMap { version: 0 }
    );
    let map = typical_map();
    let options = TranslateOptions::default().memmap(Some(&map));
    let bp = translate_owned(&info, &options).unwrap().params;
    assert_eq!(bp.e820().len(), 7);
}

#[test]
fn other_errors() {
    let map = typical_map();
    let spec = StartInfoSpec::new(1).memmap(&map);
    let mem = guest(&spec);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    let options = TranslateOptions::default().initrd(InitrdChoice::Module(3));
    assert_eq!(
        translate_owned(&info, &options).unwrap_err(),
        TranslateError::NoSuchModule { index: 3, count: 0 }
    );
    let mut scratch = vec![E820Entry::new(0, 0, E820Type(0)); 3];
    let mut bp = BootParams::zeroed();
    assert_eq!(
        translate(&info, &TranslateOptions::default(), &mut scratch, &mut bp).unwrap_err(),
        TranslateError::ScratchTooSmall {
            needed: 7,
            available: 3
        }
    );
    let wrapping = [MemmapEntry::new(u64::MAX - 1, 4, MemmapType::RAM)];
    let options = TranslateOptions::default().memmap(Some(&wrapping));
    assert_eq!(
        translate_owned(&info, &options).unwrap_err(),
        TranslateError::EntryWraps {
            index: 0,
            addr: u64::MAX - 1,
            size: 4
        }
    );
}

#[test]
fn isa_window_already_reserved_is_not_added_again() {
    let map = [
        MemmapEntry::new(0, 0xa_0000, MemmapType::RAM),
        MemmapEntry::new(0xa_0000, 0x2_0000, MemmapType::RESERVED),
        MemmapEntry::new(0xc_0000, 0x4_0000, MemmapType(0xf000_0003)),
        MemmapEntry::new(0x10_0000, 0x100_0000, MemmapType::RAM),
    ];
    let spec = StartInfoSpec::new(1).memmap(&map);
    let mem = guest(&spec);
    let info = StartInfoView::read(&mem, INFO).unwrap();
    let zp = translate_owned(&info, &TranslateOptions::default()).unwrap();
    assert_eq!(zp.params.e820().len(), 4);
}

// ---- The e820 property: same bytes per type, whatever the map. ----

/// Sorted, disjoint, non-adjacent half-open intervals (u128 to avoid any
/// overflow at the top of the address space).
fn union(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.retain(|r| r.0 < r.1);
    ranges.sort();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn covers(set: &[(u128, u128)], range: (u128, u128)) -> bool {
    set.iter().any(|&(s, e)| s <= range.0 && e >= range.1)
}

/// The e820 type each PVH type must become, per docs/abi.md (written out
/// here independently of the code under test).
fn expected_type(t: u32) -> u32 {
    if [1, 2, 3, 4, 5, 7].contains(&t) {
        t
    } else {
        2
    }
}

fn by_type(entries: impl Iterator<Item = (u64, u64, u32)>) -> BTreeMap<u32, Vec<(u128, u128)>> {
    let mut m: BTreeMap<u32, Vec<(u128, u128)>> = BTreeMap::new();
    for (a, s, t) in entries {
        m.entry(t)
            .or_default()
            .push((a as u128, a as u128 + s as u128));
    }
    m.into_iter().map(|(t, v)| (t, union(v))).collect()
}

fn arbitrary_map() -> impl Strategy<Value = Vec<(u64, u64, u32)>> {
    let addr = prop_oneof![
        0u64..0x20_0000,
        0u64..0x1_0000_0000,
        any::<u64>().prop_map(|a| a >> 8)
    ];
    let size = prop_oneof![0u64..0x10_0000, 0u64..0x1_0000_0000];
    let ty = prop_oneof![
        1u32..=7,
        Just(0xf000_0001u32),
        Just(0xf000_0004u32),
        any::<u32>()
    ];
    // Up to 1000 entries (8 under Miri, which interprets every step).
    proptest::collection::vec((addr, size, ty), 0..if cfg!(miri) { 8 } else { 1000 })
}

/// Reads back the e820 table a kernel would see: the zero page in memory and
/// every SETUP_E820_EXT node on its setup_data list.
fn decode(mem: &SliceMemory<Vec<u8>>, zero_page: u64) -> Vec<(u64, u64, u32)> {
    let bp: BootParams = read_obj(mem, zero_page).unwrap();
    let mut out: Vec<_> = bp
        .e820()
        .iter()
        .map(|e| (e.addr, e.size, e.type_.0))
        .collect();
    let mut next = bp.hdr.setup_data;
    let mut hops = 0;
    while next != 0 {
        hops += 1;
        assert!(hops < 16, "setup_data list loops");
        let node: SetupData = read_obj(mem, next).unwrap();
        assert_eq!(node.type_, SetupDataType::E820_EXT);
        assert_eq!(node.len as usize % 20, 0);
        for i in 0..node.len as u64 / 20 {
            let e: E820Entry = read_obj(mem, next + 16 + i * 20).unwrap();
            out.push((e.addr, e.size, e.type_.0));
        }
        next = node.next;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 2000 }))]

    #[test]
    fn e820_keeps_every_byte_of_every_type(map in arbitrary_map()) {
        let memmap: Vec<MemmapEntry> =
            map.iter().filter(|e| e.0.checked_add(e.1).is_some()).map(|&(a, s, t)| MemmapEntry::new(a, s, MemmapType(t))).collect();
        let spec = StartInfoSpec::new(1).memmap(&memmap);
        let mut mem = SliceMemory::new(0, vec![0u8; 0x10_0000]);
        let (placement, _) = Placement::packed(0x1000, &spec).unwrap();
        write_start_info(&mut mem, &spec, &placement).unwrap();
        let info = StartInfoView::read(&mem, 0x1000).unwrap();

        let mut scratch = vec![E820Entry::new(0, 0, E820Type(0)); e820_scratch_len(memmap.len())];
        let mut bp = BootParams::zeroed();
        if memmap.is_empty() {
            // memmap_entries == 0 means "no map here".
            let r = translate(&info, &TranslateOptions::default(), &mut scratch, &mut bp);
            prop_assert_eq!(r.unwrap_err(), TranslateError::NoMemoryMap { version: 1 });
            return Ok(());
        }
        let t = translate(&info, &TranslateOptions::default(), &mut scratch, &mut bp).unwrap();
        let ext = t.e820_ext(&scratch).to_vec();
        prop_assert_eq!(ext.len(), t.e820_total.saturating_sub(128));
        let zero_page = 0x8_0000;
        if !ext.is_empty() {
            write_e820_ext(&mut mem, 0x9_0000, &ext, &mut bp).unwrap();
            prop_assert!(0x9_0000 + e820_ext_size(ext.len()) <= 0x10_0000);
        }
        mem.write(zero_page, bp.as_bytes()).unwrap();
        let decoded = decode(&mem, zero_page);

        // Sorted by address.
        prop_assert!(decoded.windows(2).all(|w| w[0].0 <= w[1].0));
        // Expected: each entry under its translated type, plus the ISA
        // window as reserved unless non-RAM entries already cover it.
        let mut expected: Vec<(u64, u64, u32)> =
            memmap.iter().map(|e| (e.addr, e.size, expected_type(e.type_.0))).collect();
        let non_ram = union(memmap.iter().filter(|e| e.type_.0 != 1).map(|e| (e.addr as u128, e.addr as u128 + e.size as u128)).collect());
        if !covers(&non_ram, (0xa_0000, 0x10_0000)) {
            expected.push((0xa_0000, 0x6_0000, 2));
        }
        prop_assert_eq!(by_type(decoded.into_iter()), by_type(expected.into_iter()));
    }
}
