//! PVH ELF rules, relocation, planning and loading, on ELF images built
//! here.

mod common;

use common::*;
use pvh_entry::{MemmapType, StartInfoView, VmMemory};
use pvh_loader::*;

fn cfg(kernel: &[u8]) -> BootConfig<'_> {
    BootConfig::new(Kernel::pvh_elf(kernel)).cmdline(b"console=ttyS0")
}

fn err(kernel: &[u8]) -> LoadError {
    ElfImage::parse(kernel).expect_err("must be rejected")
}

#[test]
fn elf64_loads_segments_and_zeroes_bss() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mem = memory(16 << 20, 0xaa);
    let config = cfg(&elf);
    let plan = plan(&ram, &config).unwrap();
    let guest = load(&mem, &plan).unwrap();
    assert_eq!(read(&mem, 0x10_0000, 0x40), vec![0x90; 0x40]);
    assert_eq!(read(&mem, 0x10_1000, 0x20), vec![0x11; 0x20]);
    // BSS: memsz 0x3000, 0x20 from the file; the rest must be zero.
    assert_eq!(read(&mem, 0x10_1020, 0x3000 - 0x20), vec![0; 0x3000 - 0x20]);
    // The byte after BSS is untouched.
    assert_eq!(read(&mem, 0x10_4000, 1), vec![0xaa]);
    assert_eq!(guest.cpu.rip, 0x10_0010);
    assert_eq!(guest.cpu.rbx, guest.start_info);
    assert_eq!(guest.cpu.mode, EntryMode::Protected32);
    assert_eq!(plan.relocation_delta(), 0);
}

#[test]
fn load_into_zeroed_writes_the_same_but_no_zeros() {
    let elf = simple_elf().build();
    let ram = GuestRam::new(16 << 20).unwrap();
    let config = cfg(&elf).acpi(Some(0x1000));
    let plan = plan(&ram, &config).unwrap();
    // On fresh (zero) memory both leave every byte the same.
    let (fresh, fresh_too) = (memory(16 << 20, 0), memory(16 << 20, 0));
    let a = load(&fresh, &plan).unwrap();
    let b = load_into_zeroed(&fresh_too, &plan).unwrap();
    assert_eq!(read(&fresh, 0, 16 << 20), read(&fresh_too, 0, 16 << 20));
    assert_eq!((a.cpu.rip, a.start_info), (b.cpu.rip, b.start_info));
    // On memory that is not zero, it writes no zeros: BSS and the ACPI
    // region keep what was there (what `load` clears).
    let dirty = memory(16 << 20, 0xaa);
    load_into_zeroed(&dirty, &plan).unwrap();
    assert_eq!(read(&dirty, 0x10_1000, 0x20), vec![0x11; 0x20]);
    assert_eq!(read(&dirty, 0x10_1020, 0x10), vec![0xaa; 0x10]);
    assert_eq!(read(&dirty, 0xe_0000, 0x10), vec![0xaa; 0x10]);
}

#[test]
fn elf32_with_4_byte_note_loads() {
    let elf = Elf::new32(vec![Seg::code(0x20_0000, &[0xc3; 16])])
        .entry4(0x20_0004)
        .build();
    let image = ElfImage::parse(&elf).unwrap();
    assert_eq!(image.class, ElfClass::Elf32);
    assert_eq!(image.entry, 0x20_0004);
    let ram = kvm_ram(8 << 20).unwrap();
    let mem = memory(8 << 20, 0);
    let config = cfg(&elf);
    let guest = load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    assert_eq!(guest.cpu.rip, 0x20_0004);
    assert_eq!(read(&mem, 0x20_0000, 16), vec![0xc3; 16]);
}

#[test]
fn eight_byte_note_is_read_whole() {
    let elf = simple_elf().build();
    assert_eq!(ElfImage::parse(&elf).unwrap().entry, 0x10_0010);
    // An 8-byte value above 4 GiB is no 32-bit entry.
    let bad = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])])
        .entry8(0x1_0010_0000)
        .build();
    assert!(matches!(err(&bad), LoadError::Note(_)));
}

#[test]
fn odd_note_size_is_rejected() {
    let mut e = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])]);
    e.notes
        .push((b"Xen\0".to_vec(), PHYS32_ENTRY, vec![0, 0, 0x10, 0, 0, 0]));
    assert!(matches!(err(&e.build()), LoadError::Note(_)));
}

#[test]
fn missing_note_is_not_pvh() {
    let e = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])]).build();
    assert_eq!(err(&e), LoadError::NoPvhEntry);
    // A non-Xen note of type 18 does not count.
    let mut e = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])]);
    e.notes.push((
        b"GNU\0".to_vec(),
        PHYS32_ENTRY,
        0x10_0000u32.to_le_bytes().to_vec(),
    ));
    assert_eq!(err(&e.build()), LoadError::NoPvhEntry);
}

#[test]
fn entry_outside_segments_is_rejected() {
    let e = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])])
        .entry8(0x20_0000)
        .build();
    assert_eq!(
        err(&e),
        LoadError::EntryOutsideSegments { entry: 0x20_0000 }
    );
    // Just past the end.
    let e = Elf::new64(vec![Seg::code(0x10_0000, &[0; 16])])
        .entry8(0x10_0010)
        .build();
    assert_eq!(
        err(&e),
        LoadError::EntryOutsideSegments { entry: 0x10_0010 }
    );
}

#[test]
fn entry_in_non_executable_or_bss_is_rejected() {
    let e = Elf::new64(vec![Seg::data(0x10_0000, &[0; 16], 16)])
        .entry8(0x10_0000)
        .build();
    assert_eq!(
        err(&e),
        LoadError::EntryOutsideSegments { entry: 0x10_0000 }
    );
    let mut code = Seg::code(0x10_0000, &[0; 16]);
    code.memsz = 0x1000;
    let e = Elf::new64(vec![code]).entry8(0x10_0800).build();
    assert_eq!(
        err(&e),
        LoadError::EntryOutsideSegments { entry: 0x10_0800 }
    );
}

#[test]
fn overlapping_segments_are_rejected() {
    let e = Elf::new64(vec![
        Seg::code(0x10_0000, &[0; 0x100]),
        Seg::data(0x10_00ff, &[1], 1),
    ])
    .entry8(0x10_0000)
    .build();
    assert!(matches!(
        err(&e),
        LoadError::SegmentOverlap {
            first: 0,
            first_start: 0x10_0000,
            second: 1,
            second_start: 0x10_00ff,
            ..
        }
    ));
    // Overlap through BSS only.
    let e = Elf::new64(vec![
        Seg::data(0x10_0000, &[0; 4], 0x2000),
        Seg::code(0x10_1000, &[0; 4]),
    ])
    .entry8(0x10_1000)
    .build();
    assert!(matches!(err(&e), LoadError::SegmentOverlap { .. }));
}

#[test]
fn filesz_above_memsz_is_rejected() {
    let mut s = Seg::code(0x10_0000, &[0; 0x20]);
    s.memsz = 0x10;
    let e = Elf::new64(vec![s]).entry8(0x10_0000).build();
    assert_eq!(
        err(&e),
        LoadError::FileszExceedsMemsz {
            index: 0,
            filesz: 0x20,
            memsz: 0x10
        }
    );
}

#[test]
fn segment_outside_file_is_rejected() {
    let mut s = Seg::code(0x10_0000, &[0; 0x20]);
    s.filesz = Some(0x10_0000);
    s.memsz = 0x10_0000;
    let e = Elf::new64(vec![s]).entry8(0x10_0000).build();
    assert!(matches!(
        err(&e),
        LoadError::SegmentOutsideFile {
            index: 0,
            filesz: 0x10_0000,
            ..
        }
    ));
    let mut s = Seg::code(0x10_0000, &[0; 0x20]);
    s.offset = Some(u64::MAX - 4);
    let e = Elf::new64(vec![s]).entry8(0x10_0000).build();
    assert!(matches!(err(&e), LoadError::SegmentOutsideFile { .. }));
}

#[test]
fn wrapping_segment_is_rejected() {
    let mut s = Seg::code(u64::MAX - 0x10, &[0; 0x20]);
    s.memsz = 0x20;
    let e = Elf::new64(vec![s]).entry8(0x10_0000).build();
    assert!(matches!(err(&e), LoadError::AddressWraps { .. }));
}

#[test]
fn wrong_machine_type_or_endianness_is_rejected() {
    let mut e = simple_elf();
    e.machine = 183; // aarch64
    assert_eq!(err(&e.build()), LoadError::ElfMachine { machine: 183 });
    let mut e = simple_elf();
    e.e_type = 1; // ET_REL
    assert_eq!(err(&e.build()), LoadError::ElfType { e_type: 1 });
    let mut e = simple_elf();
    e.big_endian = true;
    assert!(matches!(err(&e.build()), LoadError::Elf(_)));
    let mut bytes = simple_elf().build();
    bytes[4] = 7;
    assert!(matches!(err(&bytes), LoadError::Elf(_)));
}

#[test]
fn no_load_segment_is_rejected() {
    let e = Elf::new64(vec![]).entry8(0x10_0000).build();
    assert_eq!(err(&e), LoadError::NoLoadSegments);
}

#[test]
fn preferred_range_outside_ram_without_reloc_fails() {
    let elf = Elf::new64(vec![Seg::code(0x100_0000, &[0; 16])])
        .entry8(0x100_0000)
        .build();
    let ram = kvm_ram(8 << 20).unwrap();
    assert!(matches!(
        plan(&ram, &cfg(&elf)),
        Err(LoadError::NotInRam {
            purpose: Purpose::Segment(0),
            start: 0x100_0000,
            ..
        })
    ));
}

#[test]
fn relocation_is_used_when_the_preferred_range_is_not_ram() {
    // Preferred 16 MiB, RAM only 8 MiB: must move, 2 MiB aligned, >= 1 MiB.
    let elf = Elf::new64(vec![
        Seg::code(0x100_0000, &[0xab; 0x100]),
        Seg::data(0x100_2000, &[0xcd; 8], 0x1000),
    ])
    .entry8(0x100_0040)
    .reloc(0x20_0000, 0x10_0000, 0xffff_ffff)
    .build();
    let ram = kvm_ram(8 << 20).unwrap();
    let mem = memory(8 << 20, 0xee);
    let config = cfg(&elf);
    let plan = plan(&ram, &config).unwrap();
    assert_eq!(plan.relocation_delta(), 0x20_0000 - 0x100_0000);
    assert_eq!(plan.entry(), 0x20_0040);
    let guest = load(&mem, &plan).unwrap();
    assert_eq!(guest.cpu.rip, 0x20_0040);
    assert_eq!(read(&mem, 0x20_0000, 0x100), vec![0xab; 0x100]);
    assert_eq!(read(&mem, 0x20_2000, 8), vec![0xcd; 8]);
    assert_eq!(read(&mem, 0x20_2008, 0xff8), vec![0; 0xff8]);
}

#[test]
fn relocation_is_used_when_the_preferred_range_is_taken() {
    // Preferred range overlaps the GDT page at 0x500.
    let elf = Elf::new64(vec![Seg::code(0x0, &[0x90; 0x1000])])
        .entry8(0x10)
        .reloc(0x1000, 0x40_0000, 0xffff_ffff)
        .build();
    let ram = kvm_ram(8 << 20).unwrap();
    let plan = plan(&ram, &cfg(&elf)).unwrap();
    assert_eq!(plan.find(Purpose::Segment(0)).unwrap().start, 0x40_0000);
    assert_eq!(plan.entry(), 0x40_0010);
    // Without the note: the overlap is the error.
    let elf = Elf::new64(vec![Seg::code(0x0, &[0x90; 0x1000])])
        .entry8(0x10)
        .build();
    assert!(matches!(
        pvh_loader::plan(&ram, &cfg(&elf)),
        Err(LoadError::Overlap {
            first: Purpose::Segment(0),
            second: Purpose::Gdt,
            ..
        })
    ));
}

#[test]
fn relocation_at_an_address_checks_the_note() {
    let elf = simple_elf().reloc(0x10_0000, 0x10_0000, 0x7f_ffff).build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mut config = cfg(&elf);
    config.kernel = config.kernel.with_relocation(Relocation::At(0x30_0000));
    let p = plan(&ram, &config).unwrap();
    assert_eq!((p.entry(), p.relocation_delta()), (0x30_0010, 0x20_0000));
    config.kernel = config.kernel.with_relocation(Relocation::At(0x30_1000));
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::BadLoadAddress {
            addr: 0x30_1000,
            ..
        })
    ));
    config.kernel = config.kernel.with_relocation(Relocation::At(0x80_0000)); // last byte beyond max
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::BadLoadAddress { .. })
    ));
    let plain = simple_elf().build();
    let mut config = cfg(&plain);
    config.kernel = config.kernel.with_relocation(Relocation::At(0x30_0000));
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::NotRelocatable {
            start: 0x10_0000,
            ..
        })
    ));
}

#[test]
fn relocation_anywhere_and_no_space() {
    let elf = simple_elf()
        .reloc(0x10_0000, 0x50_0000, 0xffff_ffff)
        .build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mut config = cfg(&elf);
    config.kernel = config.kernel.with_relocation(Relocation::Anywhere);
    assert_eq!(plan(&ram, &config).unwrap().entry(), 0x50_0010);
    // Max address too low for any fit above min.
    let elf = Elf::new64(vec![Seg::code(0x100_0000, &[0; 16])])
        .entry8(0x100_0000)
        .reloc(0x20_0000, 0x10_0000, 0x10_0008)
        .build();
    assert!(matches!(
        plan(&ram, &cfg(&elf)),
        Err(LoadError::NoSpace {
            purpose: Purpose::Segment(0),
            ..
        })
    ));
}

#[test]
fn start_info_modules_cmdlines_and_memmap_are_written() {
    let elf = simple_elf().build();
    let ram = kvm_ram(64 << 20).unwrap();
    let mem = memory(64 << 20, 0);
    let initrd = vec![0x42u8; 5000];
    let extra = vec![0x43u8; 10];
    let mut config = cfg(&elf);
    config.rsdp = Some(0xe_0000);
    config.modules = vec![
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
        Module::new(&extra)
            .cmdline(Some(b"extra=1"))
            .above_4g(false)
            .headroom(0),
    ];
    let p = plan(&ram, &config).unwrap();
    let guest = load(&mem, &p).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    assert_eq!(view.version(), 1);
    assert_eq!(view.rsdp_paddr(), Some(0xe_0000));
    let mut buf = [0u8; 64];
    assert_eq!(view.read_cmdline(&mut buf).unwrap(), b"console=ttyS0");
    let mods: Vec<_> = view.modules().collect();
    assert_eq!(mods.len(), 2);
    assert_eq!(mods[0].entry.size, 5000);
    assert_eq!(mods[0].entry.paddr % 4096, 0);
    assert!(mods[0].entry.paddr >= 0x10_0000 && mods[0].entry.paddr + 5000 <= 64 << 20);
    assert_eq!(read(&mem, mods[0].entry.paddr, 5000), initrd);
    assert_eq!(read(&mem, mods[1].entry.paddr, 10), extra);
    assert_eq!(
        view.read_module_cmdline(&mods[1], &mut buf).unwrap(),
        b"extra=1"
    );
    let map: Vec<_> = view.memmap().map(|e| (e.addr, e.size, e.type_)).collect();
    assert_eq!(
        map,
        vec![
            (0, 0xa_0000, MemmapType::RAM),
            (0xa_0000, 0x6_0000, MemmapType::RESERVED),
            (0x10_0000, (64 << 20) - 0x10_0000, MemmapType::RAM),
            (0xfffb_c000, 0x4000, MemmapType::RESERVED),
        ]
    );
    // GDT bytes at 0x500, per the PVH layout.
    assert_eq!(read(&mem, 0x508, 8), 0x00cf_9b00_0000_ffffu64.to_le_bytes());
    assert_eq!(read(&mem, 0x518, 8), 0x0000_8b00_0000_0067u64.to_le_bytes());
    assert_eq!((guest.cpu.gdt.base, guest.cpu.gdt.limit), (0x500, 31));
}

#[test]
fn module_headroom_is_kept_free_after_each_module() {
    let elf = simple_elf().build();
    let ram = kvm_ram(64 << 20).unwrap();
    let (a, b) = (vec![1u8; 5000], vec![2u8; 300]);
    let mut config = cfg(&elf);
    config.modules = vec![
        Module::new(&a).headroom(0x3_0000),
        Module::new(&b).headroom(0x10_0123),
    ];
    let p = plan(&ram, &config).unwrap();
    for (i, (len, room)) in [(5000u64, 0x3_0000u64), (300, 0x10_0123)]
        .into_iter()
        .enumerate()
    {
        let m = p.find(Purpose::Module(i)).unwrap();
        let h = p.find(Purpose::Headroom(i)).unwrap();
        assert_eq!(m.len, len);
        assert_eq!(m.start % 4096, 0);
        // Right after the module, exactly as long as asked.
        assert_eq!((h.start, h.len), (m.start + len, room));
        // Nothing else in the module's block.
        for other in p.placements() {
            if other.purpose != Purpose::Module(i) && other.purpose != Purpose::Headroom(i) {
                assert!(
                    other.start >= h.start + h.len || other.start + other.len <= m.start,
                    "{other:?} in module {i}'s room"
                );
            }
        }
    }
    // The plan prints the headroom.
    assert!(p.to_string().contains("module 1 headroom"), "{p}");
    // start_info lists the modules only.
    let mem = memory(64 << 20, 0);
    let guest = load(&mem, &p).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    let sizes: Vec<u64> = view.modules().map(|m| m.entry.size).collect();
    assert_eq!(sizes, vec![5000, 300]);
    // Headroom that does not fit is the module's NoSpace.
    config.modules[1].headroom = 128 << 20;
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::NoSpace {
            purpose: Purpose::Module(1),
            ..
        })
    ));
    config.modules[1].headroom = u64::MAX;
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::AddressWraps { .. })
    ));
}

#[test]
fn many_modules_fit_while_memory_lasts() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let blob = [7u8; 100];
    let mut config = cfg(&elf);
    config.modules = vec![
        Module::new(&blob)
            .cmdline(Some(b"m"))
            .above_4g(false)
            .headroom(0);
        1000
    ];
    let p = plan(&ram, &config).unwrap();
    let mem = memory(16 << 20, 0);
    let guest = load(&mem, &p).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read_with_limits(
        &vm,
        guest.start_info,
        &pvh_entry::Limits::DEFAULT.max_modules(4096),
    )
    .unwrap();
    assert_eq!(view.module_count(), 1000);
    // 3000 pages of modules do not fit in 16 MiB.
    config.modules = vec![Module::new(&blob).cmdline(None).above_4g(false).headroom(0); 4000];
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::NoSpace {
            purpose: Purpose::Module(_),
            ..
        })
    ));
}

#[test]
fn module_too_big_is_a_typed_error() {
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let big = vec![0u8; 9 << 20];
    let mut config = cfg(&elf);
    config.modules = vec![Module::new(&big).cmdline(None).above_4g(false).headroom(0)];
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::NoSpace {
            purpose: Purpose::Module(0),
            ..
        })
    ));
}

#[test]
fn modules_stay_below_4g_unless_allowed() {
    let elf = simple_elf().build();
    let ram = kvm_ram(6 << 30).unwrap();
    let blob = [1u8; 4096];
    let mut config = cfg(&elf);
    config.modules = vec![
        Module::new(&blob).cmdline(None).above_4g(false).headroom(0),
        Module::new(&blob).cmdline(None).above_4g(true).headroom(0),
    ];
    let p = plan(&ram, &config).unwrap();
    let m0 = p.find(Purpose::Module(0)).unwrap();
    let m1 = p.find(Purpose::Module(1)).unwrap();
    assert!(m0.start + m0.len <= 0xc000_0000, "{m0:?}");
    assert!(m1.start >= 0x1_0000_0000, "{m1:?}");
    // Nothing lands in the MMIO hole.
    assert!(
        p.placements()
            .iter()
            .all(|pl| matches!(pl.purpose, Purpose::Reserved(_))
                || pl.start + pl.len <= 0xc000_0000
                || pl.start >= 0x1_0000_0000)
    );
}

#[test]
fn nul_in_cmdline_is_rejected() {
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let mut config = cfg(&elf);
    config.cmdline = b"a\0b";
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::StartInfo(pvh_entry::WriteError::NulInCmdline(_)))
    ));
}

#[test]
fn load_writes_the_inputs_the_plan_was_made_from() {
    // `load` takes the plan alone (a different config cannot be passed):
    // the command line written is the planned one.
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let mut config = cfg(&elf);
    config.cmdline = b"planned command line";
    let p = plan(&ram, &config).unwrap();
    config.cmdline = b"changed after planning";
    assert_eq!(p.config().cmdline, b"planned command line");
    let mem = memory(8 << 20, 0);
    let guest = load(&mem, &p).unwrap();
    let si = read(&mem, guest.start_info, 48);
    let at = u64::from_le_bytes(si[24..32].try_into().unwrap());
    assert_eq!(read(&mem, at, 21), b"planned command line\0");
}

#[test]
fn nothing_is_written_outside_the_planned_ram() {
    // Backing memory twice the RAM the planner knows, guard filled.
    let elf = Elf::new64(vec![Seg::code(0x70_0000, &[1; 0x100])])
        .entry8(0x70_0000)
        .reloc(0x1000, 0x10_0000, 0xffff_ffff)
        .build();
    let ram = kvm_ram(8 << 20).unwrap();
    let mem = memory(16 << 20, 0x5a);
    let blob = vec![9u8; 3 << 20];
    let mut config = cfg(&elf);
    config.modules = vec![
        Module::new(&blob)
            .cmdline(Some(b"x"))
            .above_4g(false)
            .headroom(0),
    ];
    load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    assert!(read(&mem, 8 << 20, 8 << 20).iter().all(|&b| b == 0x5a));
}

#[test]
fn plan_display_lists_every_placement() {
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let p = plan(&ram, &cfg(&elf)).unwrap();
    let text = p.to_string();
    for needle in [
        "GDT",
        "IDT",
        "ELF segment 0",
        "ELF segment 1",
        "start_info block",
        "hypervisor reserved",
        "memory map",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    check_disjoint(p.placements()).unwrap();
}

#[test]
fn kvm_reserved_range_is_exposed_and_reserved() {
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let p = plan(&ram, &cfg(&elf)).unwrap();
    assert_eq!(
        p.reserved()[0].range,
        KVM_IDENTITY_MAP_ADDR..KVM_TSS_ADDR + 0x3000
    );
    assert!(p.memmap().iter().any(|e| e.addr == KVM_IDENTITY_MAP_ADDR
        && e.size == 0x4000
        && e.type_ == MemmapType::RESERVED));
}

#[test]
fn linux_loader_cmdline_is_accepted() {
    use pvh_loader::linux_loader::{Cmdline, cmdline_bytes};
    let mut c = Cmdline::new(64).unwrap();
    c.insert("console", "ttyS0").unwrap();
    c.insert_str("panic=-1").unwrap();
    let bytes = cmdline_bytes(&c).unwrap();
    assert_eq!(bytes, b"console=ttyS0 panic=-1");
    let elf = simple_elf().build();
    let ram = kvm_ram(8 << 20).unwrap();
    let mem = memory(8 << 20, 0);
    let config = BootConfig::new(Kernel::pvh_elf(&elf)).cmdline(&bytes);
    let guest = load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        view.read_cmdline(&mut buf).unwrap(),
        b"console=ttyS0 panic=-1"
    );
}
