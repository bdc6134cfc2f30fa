use super::*;
use proptest::prelude::*;

fn ram(addr: u64, size: u64) -> E820Entry {
    E820Entry::new(addr, size, E820Type::RAM)
}
fn rsv(addr: u64, size: u64) -> E820Entry {
    E820Entry::new(addr, size, E820Type::RESERVED)
}

const MIB: u64 = 1 << 20;

fn needs(pref: u64, relocatable: bool) -> KernelNeeds {
    KernelNeeds {
        init_size: 0x100_0000,
        code_size: 0x80_0000,
        kernel_alignment: 0x20_0000,
        align: 0x20_0000,
        pref_address: pref,
        relocatable,
        above_4g: false,
        initrd_addr_max: 0x7fff_ffff,
        cmdline_max: 2047,
    }
}

fn request(needs: KernelNeeds, code: Option<(u64, u64)>) -> LinuxRequest {
    LinuxRequest {
        needs,
        code,
        zero_page_size: 0x1000,
        initrd: InitrdRequest::None,
        cmdline: None,
    }
}

fn place_with(
    req: &LinuxRequest,
    e820: &[E820Entry],
    avoid: &[(u64, u64)],
) -> Result<LinuxPlacement, LinuxBootError> {
    let mut scratch = vec![(0, 0); avoid.len() + PLACE_EXTRA_RANGES];
    place(req, e820, avoid, &mut scratch)
}

use pvh_bootparams::synth::SynthBzImage as Bz;

fn needs_of(bz: &Bz) -> Result<KernelNeeds, LinuxBootError> {
    let bytes = bz.build();
    KernelNeeds::of(&BzImage::parse(&bytes).unwrap())
}

#[test]
fn kernel_needs_reads_the_header_and_applies_the_rules() {
    let n = needs_of(&Bz::default()).unwrap();
    assert_eq!(
        n,
        KernelNeeds {
            init_size: 0x40_0000,
            code_size: 0x540,
            kernel_alignment: 0x20_0000,
            align: 0x20_0000,
            pref_address: 0x100_0000,
            relocatable: true,
            above_4g: true,
            initrd_addr_max: 0x7fff_ffff,
            cmdline_max: 2047,
        }
    );
    // Relocatable: the alignment must be a power of two (a mask to the
    // decompressor); not relocatable: the field is not used.
    let bad = Bz::default().kernel_alignment(0x30_0000);
    assert_eq!(needs_of(&bad), Err(LinuxBootError::BadAlignment(0x30_0000)));
    let fixed = Bz::default().kernel_alignment(0x30_0000).relocatable(false);
    assert_eq!(needs_of(&fixed).unwrap().align, 0x1000);
    // A small alignment is the kernel's; pvh still loads on a page.
    let small = needs_of(&Bz::default().kernel_alignment(0x10)).unwrap();
    assert_eq!((small.kernel_alignment, small.align), (0x10, 0x1000));
    assert_eq!(
        needs_of(&Bz::default().init_size(0x53f)),
        Err(LinuxBootError::BadInitSize {
            init_size: 0x53f,
            code: 0x540
        })
    );
    assert_eq!(
        needs_of(&Bz::default().version(0x020b)),
        Err(LinuxBootError::Image(ImageError::ProtocolTooOld {
            found: 0x020b,
            required: 0x020c
        }))
    );
    assert_eq!(
        needs_of(&Bz::default().xloadflags(2)),
        Err(LinuxBootError::Image(ImageError::No64BitEntry))
    );
    assert_eq!(
        needs_of(&Bz::default().pref_address(0))
            .unwrap()
            .pref_address,
        MIB
    );
}

#[test]
fn runtime_start_follows_boot_rst() {
    // boot.rst (init_size): relocatable: max(load, pref) rounded up to the
    // alignment; otherwise pref.
    let n = needs(0x100_0000, true);
    assert_eq!(n.runtime_start(0x40_0000), Some(0x100_0000));
    assert_eq!(n.runtime_start(0x100_0000), Some(0x100_0000));
    assert_eq!(n.runtime_start(0x100_4400), Some(0x120_0000));
    assert_eq!(n.runtime_start(u64::MAX - 5), None);
    let fixed = needs(0x100_0000, false);
    assert_eq!(fixed.runtime_start(0x3000_0000), Some(0x100_0000));
}

#[test]
fn limits_for_initrd_and_cmdline() {
    let mut n = needs(0x100_0000, true);
    assert_eq!(n.initrd_limit(true), 0x8000_0000);
    assert_eq!(
        n.check_initrd(0x7fff_f000, 0x2000, true),
        Err(LinuxBootError::InitrdTooHigh {
            end: 0x8000_1000,
            max: 0x7fff_ffff
        })
    );
    assert_eq!(n.check_initrd(0x7fff_e000, 0x2000, true), Ok(()));
    assert_eq!(n.check_initrd(0xffff_f000, 0, true), Ok(()), "empty");
    n.above_4g = true;
    assert_eq!(n.initrd_limit(true), u64::MAX);
    assert_eq!(n.initrd_limit(false), 0x8000_0000);
    assert_eq!(n.check_initrd(0x1_0000_0000, 0x1000, true), Ok(()));
    // initrd_addr_max 0 means what it says (kexec places nothing).
    n.initrd_addr_max = 0;
    assert_eq!(n.initrd_limit(false), 1);

    let n = needs(0x100_0000, true);
    assert_eq!(n.check_cmdline(0x1000, 2047), Ok(()));
    assert_eq!(
        n.check_cmdline(0x1000, 2048),
        Err(LinuxBootError::CmdlineTooLong {
            len: 2048,
            max: 2047
        })
    );
    assert_eq!(
        n.check_cmdline(0xffff_fff0, 16),
        Err(LinuxBootError::CmdlineTooHigh {
            addr: 0xffff_fff0,
            end: 0x1_0000_0001
        })
    );
}

#[test]
fn preferred_address_when_free() {
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x7ff0_0000)];
    let p = place_with(&request(needs(0x100_0000, true), None), &map, &[]).unwrap();
    assert_eq!((p.load, p.runtime, p.copy), (0x100_0000, 0x100_0000, true));
    assert_eq!(p.entry(), 0x100_0200);
    assert_eq!(p.zero_page, ZERO_PAGE_MIN);
}

#[test]
fn relocates_past_modules_and_reserved_ranges() {
    let map = [
        ram(0, 0x9_fc00),
        ram(MIB, 0x7ff0_0000),
        rsv(0x180_0000, 0x1000),
    ];
    // The module covers the preferred address; the reserved page is in the
    // next aligned window; the one after must be chosen.
    let avoid = [(0x100_0000, 0x120_0000)];
    let p = place_with(&request(needs(0x100_0000, true), None), &map, &avoid).unwrap();
    assert_eq!(p.runtime, 0x1a0_0000);
    assert!(is_free(&map, &avoid, p.runtime, 0x100_0000));
    // Not relocatable: no way out.
    assert_eq!(
        place_with(&request(needs(0x100_0000, false), None), &map, &avoid),
        Err(LinuxBootError::NoRoom {
            part: Part::Kernel,
            size: 0x100_0000,
            align: 0x20_0000
        })
    );
}

#[test]
fn never_below_pref_address() {
    // Free RAM at 1 MiB but the kernel prefers 16 MiB: loading lower would
    // not help (it moves itself up before decompressing), so it goes at
    // 16 MiB, and with too little RAM above 16 MiB there is no room.
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x180_0000)];
    assert!(matches!(
        place_with(&request(needs(0x100_0000, true), None), &map, &[]),
        Err(LinuxBootError::NoRoom {
            part: Part::Kernel,
            ..
        })
    ));
    let roomy = [ram(0, 0x9_fc00), ram(MIB, 0x1ff0_0000)];
    let p = place_with(&request(needs(0x100_0000, true), None), &roomy, &[]).unwrap();
    assert_eq!(p.runtime, 0x100_0000);
}

#[test]
fn code_stays_where_its_own_runtime_start_is_the_chosen_one() {
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x7ff0_0000)];
    // `pvh wrap`'s payload: code at 4 MiB, below pref: the kernel would
    // move itself to 16 MiB, which is free: no copy, same address as a
    // loader that copies.
    let code = Some((0x40_0000, 0xc0_0000));
    let p = place_with(&request(needs(0x100_0000, true), code), &map, &[]).unwrap();
    assert_eq!((p.load, p.runtime, p.copy), (0x40_0000, 0x100_0000, false));
    // A module high up: its own runtime start would be higher than the
    // lowest free one: copied down to 16 MiB.
    let code = Some((0x3000_4400, 0x3080_4400));
    let p = place_with(&request(needs(0x100_0000, true), code), &map, &[]).unwrap();
    assert_eq!((p.load, p.runtime, p.copy), (0x100_0000, 0x100_0000, true));
    // Code already at its runtime start.
    let code = Some((0x100_0000, 0x180_0000));
    let p = place_with(&request(needs(0x100_0000, true), code), &map, &[]).unwrap();
    assert_eq!((p.load, p.copy), (0x100_0000, false));
    // Not relocatable, code inside the window above pref: the kernel's own
    // backward copy could overrun its source, so pvh copies it down.
    let code = Some((0x140_0000, 0x1c0_0000));
    let p = place_with(&request(needs(0x100_0000, false), code), &map, &[]).unwrap();
    assert_eq!((p.load, p.copy), (0x100_0000, true));
    // ... and below pref it stays.
    let code = Some((0x40_0000, 0xc0_0000));
    let p = place_with(&request(needs(0x100_0000, false), code), &map, &[]).unwrap();
    assert_eq!((p.load, p.copy), (0x40_0000, false));
}

#[test]
fn zero_page_and_initrd_avoid_the_kernel_and_each_other() {
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x3ff0_0000)];
    let code = Some((0x40_0000, 0xc0_0000));
    // Low memory taken up to 0x20000 except the first page at 64 KiB.
    let avoid = [(0x1_1000, 0x9_0000)];
    let req = LinuxRequest {
        initrd: InitrdRequest::Place {
            size: 0x1234,
            allow_high: false,
        },
        ..request(needs(0x100_0000, true), code)
    };
    let p = place_with(&req, &map, &avoid).unwrap();
    assert_eq!(p.zero_page, 0x1_0000);
    // Top-down below the end of RAM (initrd_addr_max is above it).
    assert_eq!(p.initrd, Some((0x4000_0000 - 0x2000, 0x1234)));
    // With a 0x2000-byte zero page (page + e820 node) the free page at 64
    // KiB is too small: the next free range is past the avoided one.
    let req = LinuxRequest {
        zero_page_size: 0x2000,
        ..req
    };
    let p = place_with(&req, &map, &avoid).unwrap();
    assert_eq!(p.zero_page, 0x9_0000);
    // Too large for low memory: the first free range above the ISA window.
    let req = LinuxRequest {
        zero_page_size: 0x1_0000,
        ..req
    };
    let p = place_with(&req, &map, &avoid).unwrap();
    assert_eq!(p.zero_page, MIB);
    // initrd_addr_max below the top of RAM: the initrd goes under it.
    let mut n = needs(0x100_0000, true);
    n.initrd_addr_max = 0x2fff_ffff;
    let req = LinuxRequest {
        needs: n,
        initrd: InitrdRequest::Place {
            size: 0x1000,
            allow_high: true,
        },
        ..request(n, None)
    };
    let p = place_with(&req, &map, &[]).unwrap();
    assert_eq!(p.initrd, Some((0x3000_0000 - 0x1000, 0x1000)));
}

#[test]
fn given_initrd_and_cmdline_are_checked() {
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x7ff0_0000)];
    let mut n = needs(0x100_0000, true);
    n.initrd_addr_max = 0x0fff_ffff;
    let req = LinuxRequest {
        initrd: InitrdRequest::At {
            addr: 0x1000_0000,
            size: 0x1000,
        },
        ..request(n, None)
    };
    assert_eq!(
        place_with(&req, &map, &[]),
        Err(LinuxBootError::InitrdTooHigh {
            end: 0x1000_1000,
            max: 0x0fff_ffff
        })
    );
    let req = LinuxRequest {
        cmdline: Some((0x2000, 4096)),
        ..request(n, None)
    };
    assert_eq!(
        place_with(&req, &map, &[]),
        Err(LinuxBootError::CmdlineTooLong {
            len: 4096,
            max: 2047
        })
    );
    // A given initrd is never overwritten.
    let req = LinuxRequest {
        initrd: InitrdRequest::At {
            addr: 0x100_0000,
            size: 0x1000,
        },
        ..request(needs(0x100_0000, true), None)
    };
    let p = place_with(&req, &map, &[]).unwrap();
    assert_eq!(p.runtime, 0x120_0000);
    assert_eq!(p.initrd, Some((0x100_0000, 0x1000)));
}

#[test]
fn too_many_ranges_is_typed() {
    let map = [ram(0, 0x9_fc00), ram(MIB, 0x7ff0_0000)];
    let avoid = [(0, 1); 7];
    let mut scratch = [(0, 0); 8];
    assert_eq!(
        place(
            &request(needs(0x100_0000, true), None),
            &map,
            &avoid,
            &mut scratch
        ),
        Err(LinuxBootError::TooManyRanges {
            ranges: 11,
            capacity: 8
        })
    );
}

#[test]
fn ram_overlapped_by_reserved_is_not_free() {
    let map = [ram(0x10_0000, 0x1000_0000), rsv(0x100_0000, 0x10)];
    assert!(!is_free(&map, &[], 0x100_0000, 0x1000));
    assert!(is_free(&map, &[], 0x200_0000, 0x1000));
}

#[test]
fn finish_sets_the_loader_fields() {
    let mut bp = BootParams::zeroed();
    let p = LinuxPlacement {
        load: 0x40_0000,
        runtime: 0x100_0000,
        window: 0x100_0000,
        copy: false,
        zero_page: 0x1_0000,
        initrd: Some((0x1_2345_6000, 0x789)),
        cmdline: Some((0x2_0000_1000, 12)),
    };
    finish_zero_page(&mut bp, &p);
    let page = bp.as_page();
    // Offsets from boot.rst / zero-page.rst.
    assert_eq!(page[0x211] & 1, 1, "LOADED_HIGH");
    assert_eq!(&page[0x214..0x218], &0x40_0000u32.to_le_bytes());
    assert_eq!(&page[0x218..0x21c], &0x2345_6000u32.to_le_bytes());
    assert_eq!(
        &page[0x0c0..0x0c4],
        &1u32.to_le_bytes(),
        "ext_ramdisk_image"
    );
    assert_eq!(&page[0x21c..0x220], &0x789u32.to_le_bytes());
    assert_eq!(&page[0x228..0x22c], &0x1000u32.to_le_bytes());
    assert_eq!(&page[0x0c8..0x0cc], &2u32.to_le_bytes(), "ext_cmd_line_ptr");
    // Above 4 GiB there is no 32-bit entry to name.
    let high = LinuxPlacement {
        load: 0x1_0000_0000,
        ..p
    };
    finish_zero_page(&mut bp, &high);
    assert_eq!({ bp.hdr.code32_start }, 0);
}

#[test]
fn range_list_is_bounded() {
    let mut l = RangeList::<2>::new();
    l.push(1, 0).unwrap();
    l.push(1, 2).unwrap();
    l.push(u64::MAX - 1, 10).unwrap();
    assert_eq!(l.as_slice(), &[(1, 3), (u64::MAX - 1, u64::MAX)]);
    assert_eq!(
        l.push(5, 5),
        Err(LinuxBootError::TooManyRanges {
            ranges: 3,
            capacity: 2
        })
    );
}

#[test]
fn start_info_ranges_cover_every_part_but_the_kernel() {
    use crate::memory::SliceMemory;
    use crate::start_info::{MemmapType, SifFlags};
    use crate::writer::{ModuleSpec, Placement, StartInfoSpec, write_start_info};
    let modules = [
        ModuleSpec {
            paddr: 0x10_0000,
            size: 0x5000,
            cmdline: Some(b"kernel"),
        },
        ModuleSpec {
            paddr: 0x20_0000,
            size: 0x300,
            cmdline: None,
        },
    ];
    let memmap = [MemmapEntry::new(0, 0x4000_0000, MemmapType::RAM)];
    let spec = StartInfoSpec {
        version: 1,
        flags: SifFlags::empty(),
        cmdline: Some(b"console=ttyS0"),
        rsdp_paddr: 0xe_0000,
        modules: &modules,
        memmap: &memmap,
    };
    let mut mem = SliceMemory::new(0, vec![0u8; 0x30_0000]);
    let placement = Placement {
        start_info: 0x1000,
        modlist: 0x2000,
        memmap: 0x3000,
        strings: 0x4000,
    };
    write_start_info(&mut mem, &spec, &placement).unwrap();
    let view = StartInfoView::read(&mem, 0x1000).unwrap();
    let mut out = RangeList::<16>::new();
    start_info_ranges(&view, Some(0x10_0000), &mut out).unwrap();
    let r = out.as_slice();
    // Values from the layout above: 56-byte start_info, 2 x 32-byte
    // modules, 1 x 24-byte map entry, 36-byte RSDP, module 1.
    for want in [
        (0x1000, 0x1038),
        (0x2000, 0x2040),
        (0x3000, 0x3018),
        (0xe_0000, 0xe_0024),
        (0x20_0000, 0x20_0300),
    ] {
        assert!(r.contains(&want), "{want:x?} missing from {r:x?}");
    }
    // The kernel module itself is not in use (it may run in place) ...
    assert!(!r.iter().any(|&(s, _)| s == 0x10_0000), "{r:x?}");
    // ... but both command lines are, with their NULs.
    let (c, len) = view.cmdline().unwrap();
    assert!(r.contains(&(c, c + u64::from(len) + 1)));
    assert_eq!(len, 13);
    assert_eq!(r.len(), 7);
}

#[test]
fn initrd_sources() {
    assert_eq!(
        InitrdSource::for_payload(Some((0x20_1000, 5)), 0),
        InitrdSource::Embedded(0x20_1000, 5)
    );
    assert_eq!(
        InitrdSource::for_payload(Some((0x20_1000, 5)), 1),
        InitrdSource::Module(0)
    );
    assert_eq!(InitrdSource::for_payload(None, 0), InitrdSource::None);
    assert_eq!(InitrdSource::after_module(0, 2), InitrdSource::Module(1));
    assert_eq!(InitrdSource::after_module(1, 2), InitrdSource::None);
    assert_eq!(
        InitrdSource::after_module(u32::MAX, u32::MAX),
        InitrdSource::None
    );
}

fn small_map(
    rams: &[(u64, u64)],
    rsvs: &[(u64, u64)],
    avoid: &[(u64, u64)],
) -> (Vec<E820Entry>, Vec<(u64, u64)>) {
    let mut map: Vec<E820Entry> = rams.iter().map(|&(a, s)| ram(a, s)).collect();
    map.extend(rsvs.iter().map(|&(a, s)| rsv(a, s)));
    let avoid = avoid.iter().map(|&(a, s)| (a, a + s)).collect();
    (map, avoid)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 3000 }))]
    // In a small address space, compare with a brute-force search, both
    // ways round.
    #[test]
    fn finds_the_lowest_or_highest_free_slot(
        rams in proptest::collection::vec((0u64..64, 1u64..32), 1..5),
        rsvs in proptest::collection::vec((0u64..64, 1u64..8), 0..5),
        avoid in proptest::collection::vec((0u64..64, 1u64..8), 0..5),
        size in 1u64..16,
        align_log in 0u32..4,
        min in 0u64..16,
        limit in 64u64..128,
        top_down in any::<bool>(),
    ) {
        let (map, avoid) = small_map(&rams, &rsvs, &avoid);
        let align = 1u64 << align_log;
        let req = Request { size, align, min, limit, preferred: None, top_down };
        let ok = |s: &u64| s % align == 0 && s + size <= limit && is_free(&map, &avoid, *s, size);
        let brute = if top_down {
            (min..limit).rev().find(ok)
        } else {
            (min..limit).find(ok)
        };
        prop_assert_eq!(find_free(&map, &avoid, &req), brute);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 1000 }))]

    // The kernel, initrd and zero page `place` picks are what the rules
    // say, checked against brute-force searches in a small address space
    // (units of 64 KiB scaled up so the real minimums apply).
    #[test]
    fn place_matches_its_rules(
        rams in proptest::collection::vec((0u64..512, 1u64..512), 1..4),
        rsvs in proptest::collection::vec((0u64..512, 1u64..32), 0..4),
        avoid in proptest::collection::vec((0u64..512, 1u64..32), 0..4),
        pref in 0u64..128,
        window in 1u64..64,
        align_log in 0u32..6,
        relocatable in any::<bool>(),
        initrd in proptest::option::of(1u64..16),
        code in proptest::option::of((0u64..512, 1u64..16)),
    ) {
        const U: u64 = 0x1_0000;
        let scale = |v: &[(u64, u64)]| v.iter().map(|&(a, s)| (a * U, s * U)).collect::<Vec<_>>();
        let (map, avoid) = small_map(&scale(&rams), &scale(&rsvs), &scale(&avoid));
        let align = (1u64 << align_log) * U;
        let n = KernelNeeds {
            init_size: window * U,
            code_size: U,
            kernel_alignment: align,
            align,
            pref_address: pref * U,
            relocatable,
            above_4g: false,
            initrd_addr_max: 0x1fff_ffff,
            cmdline_max: 100,
        };
        let code = code.map(|(a, s)| (a * U, (a + s.min(window)) * U));
        let req = LinuxRequest {
            needs: n,
            code,
            zero_page_size: 0x1000,
            initrd: initrd.map_or(InitrdRequest::None, |s| InitrdRequest::Place { size: s * U, allow_high: false }),
            cmdline: None,
        };
        let got = place_with(&req, &map, &avoid);
        // The kernel: the lowest aligned free window at or above pref and
        // 1 MiB (relocatable), or pref itself.
        let free = |a: u64, len: u64, taken: &[(u64, u64)]| is_free(&map, taken, a, len);
        let kernel = if relocatable {
            (0..1024u64).map(|i| i * U).filter(|a| *a >= (pref * U).max(ONE_MIB) && a % align == 0)
                .find(|&a| free(a, window * U, &avoid))
        } else {
            Some(pref * U).filter(|&a| free(a, window * U, &avoid))
        };
        let Some(runtime) = kernel else {
            prop_assert!(matches!(got, Err(LinuxBootError::NoRoom { part: Part::Kernel, .. })), "{:?}", got);
            return Ok(());
        };
        let mut taken = avoid.clone();
        taken.push((runtime, runtime + window * U));
        taken.extend(code);
        let initrd_at = match initrd {
            None => None,
            Some(s) => {
                let at = (0..1024u64).rev().map(|i| i * U)
                    .filter(|a| *a >= ONE_MIB && a + s * U <= 0x2000_0000)
                    .find(|&a| free(a, s * U, &taken));
                let Some(at) = at else {
                    prop_assert!(matches!(got, Err(LinuxBootError::NoRoom { part: Part::Initrd, .. })), "{:?}", got);
                    return Ok(());
                };
                taken.push((at, at + s * U));
                Some((at, s * U))
            }
        };
        // Every boundary is a multiple of U (ZERO_PAGE_MIN is U), so the
        // lowest free page is too.
        let zp = (1..1024u64).map(|i| i * U).find(|&a| free(a, 0x1000, &taken));
        let Some(zp) = zp else {
            prop_assert!(matches!(got, Err(LinuxBootError::NoRoom { part: Part::ZeroPage, .. })), "{:?}", got);
            return Ok(());
        };
        let p = got.unwrap();
        prop_assert_eq!((p.runtime, p.initrd, p.zero_page), (runtime, initrd_at, zp));
        // In place exactly when the code's own runtime start is the chosen
        // one (and it does not start inside the window above it).
        let in_place = code.is_some_and(|(s, _)| {
            n.runtime_start(s) == Some(runtime) && !(s > runtime && s < runtime + window * U)
        });
        prop_assert_eq!(!p.copy, in_place);
        prop_assert_eq!(p.load, if in_place { code.unwrap().0 } else { runtime });
    }

    #[test]
    fn absurd_values_never_panic(
        entries in proptest::collection::vec((any::<u64>(), any::<u64>(), 1u32..4), 0..20),
        size in any::<u64>(), align_log in 0u32..64, min in any::<u64>(), limit in any::<u64>(),
        top_down in any::<bool>(),
        init_size in any::<u64>(), pref in any::<u64>(), code in any::<(u64, u64)>(),
    ) {
        let map: Vec<E820Entry> = entries.iter().map(|&(a, s, t)| E820Entry::new(a, s, E820Type(t))).collect();
        let req = Request { size, align: 1 << align_log, min, limit, preferred: Some(min), top_down };
        if let Some(at) = find_free(&map, &[], &req) {
            prop_assert!(is_free(&map, &[], at, size));
        }
        let n = KernelNeeds {
            init_size,
            code_size: 1,
            kernel_alignment: 1 << align_log,
            align: 1 << align_log,
            pref_address: pref,
            relocatable: align_log % 2 == 0,
            above_4g: align_log % 3 == 0,
            initrd_addr_max: min,
            cmdline_max: 0,
        };
        let req = LinuxRequest {
            needs: n,
            code: Some(code),
            zero_page_size: size,
            initrd: InitrdRequest::Place { size: limit, allow_high: true },
            cmdline: None,
        };
        let _ = place_with(&req, &map, &[(min, limit)]);
    }
}
