//! bzImage paths: the Linux 64-bit boot protocol, pvh-unpack and the guest
//! stub, on synthetic bzImages built here.

mod common;

use common::*;
use pvh_bootparams::BootParams;
use pvh_entry::{StartInfoView, VmMemory};
use pvh_loader::*;
use zerocopy::FromBytes;

fn linux64(kernel: &[u8]) -> BootConfig<'_> {
    BootConfig::new(Kernel::linux64(kernel)).cmdline(b"console=ttyS0 quiet")
}

fn zero_page(mem: &vm_memory::GuestMemoryMmap, at: u64) -> BootParams {
    BootParams::read_from_bytes(&read(mem, at, 4096)).unwrap()
}

#[test]
fn linux64_initrd_headroom_goes_with_it_and_not_into_the_zero_page() {
    let bz = Bz::default().build();
    let initrd = vec![0x17u8; 10_000];
    let mut config = linux64(&bz);
    config.modules = vec![Module::new(&initrd).headroom(0x5_0000)];
    let ram = kvm_ram(64 << 20).unwrap();
    let mem = memory(64 << 20, 0);
    let plan = plan(&ram, &config).unwrap();
    let m = *plan.find(Purpose::Module(0)).unwrap();
    let h = *plan.find(Purpose::Headroom(0)).unwrap();
    assert_eq!(m.len, 10_000);
    assert_eq!((h.start, h.len), (m.start + 10_000, 0x5_0000));
    let guest = load(&mem, &plan).unwrap();
    let zp = zero_page(&mem, guest.zero_page.unwrap());
    assert_eq!((zp.ramdisk_image(), zp.ramdisk_size()), (m.start, 10_000));
}

#[test]
fn linux64_boot_state_zero_page_and_page_tables() {
    let bz = Bz::default().build();
    let initrd = vec![0x17u8; 10_000];
    let mut config = linux64(&bz);
    config.rsdp = Some(0xe_0000);
    config.modules = vec![
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
    ];
    let ram = kvm_ram(64 << 20).unwrap();
    let mem = memory(64 << 20, 0xaa);
    let plan = plan(&ram, &config).unwrap();
    let k = plan.find(Purpose::Kernel).unwrap();
    assert_eq!(
        (k.start, k.len),
        (0x100_0000, 0x40_0000),
        "pref_address, init_size"
    );
    let guest = load(&mem, &plan).unwrap();
    let cpu = guest.cpu;
    let zp = guest.zero_page.unwrap();
    let pt = plan.page_tables().unwrap();
    assert_eq!(cpu.mode, EntryMode::Long64);
    assert_eq!((cpu.rip, cpu.rsi, cpu.cr3), (0x100_0200, zp, pt));
    assert_eq!(
        (cpu.cs.selector, cpu.ds.selector, cpu.cs.l),
        (0x10, 0x18, true)
    );
    let stack = plan.find(Purpose::Stack).unwrap();
    assert_eq!(cpu.rsp, stack.start + stack.len);
    // Protected-mode code copied from file offset (4 + 1) * 512.
    assert_eq!(read(&mem, 0x100_0000, 0x400), bz[0xa00..0xe00].to_vec());

    let bp = zero_page(&mem, zp);
    assert_eq!({ bp.hdr.header }, u32::from_le_bytes(*b"HdrS"));
    assert_eq!({ bp.hdr.version }, 0x020f);
    assert_eq!(bp.hdr.type_of_loader, 0xff);
    assert_eq!(bp.hdr.loadflags & 1, 1, "LOADED_HIGH");
    assert_eq!({ bp.hdr.code32_start }, 0x100_0000);
    assert_eq!(bp.sentinel, 0);
    assert_eq!({ bp.acpi_rsdp_addr }, 0xe_0000);
    let cmd = bp.cmd_line_ptr();
    assert_eq!(read(&mem, cmd, 20), b"console=ttyS0 quiet\0".to_vec());
    let m0 = plan.find(Purpose::Module(0)).unwrap();
    assert_eq!((bp.ramdisk_image(), bp.ramdisk_size()), (m0.start, 10_000));
    assert_eq!(read(&mem, m0.start, 10_000), initrd);
    let e820: Vec<(u64, u64, u32)> = bp
        .e820()
        .iter()
        .map(|e| ({ e.addr }, { e.size }, { e.type_ }.0))
        .collect();
    assert!(
        e820.contains(&(0x10_0000, (64 << 20) - 0x10_0000, 1)),
        "{e820:x?}"
    );
    assert!(e820.contains(&(0, 0xa_0000, 1)), "{e820:x?}");

    // Identity map: PML4[0] -> PDPT, PDPT[i] -> PD i, 2 MiB pages up to 4 GiB.
    let word = |a: u64| u64::from_le_bytes(read(&mem, a, 8).try_into().unwrap());
    assert_eq!(word(pt), (pt + 0x1000) | 3);
    assert_eq!(word(pt + 8), 0);
    for gib in 0..4 {
        assert_eq!(
            word(pt + 0x1000 + gib * 8),
            (pt + 0x2000 + gib * 0x1000) | 3
        );
    }
    assert_eq!(word(pt + 0x1000 + 4 * 8), 0);
    assert_eq!(word(pt + 0x2000), 0x83);
    assert_eq!(word(pt + 0x2000 + 8), 0x20_0000 | 0x83);
    assert_eq!(
        word(pt + 0x2000 + 4 * 0x1000 - 8),
        (0x1_0000_0000 - 0x20_0000) | 0x83
    );
    assert_eq!(plan.find(Purpose::PageTables).unwrap().len, 6 * 0x1000);

    // The same start_info is there for anyone to read.
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    assert_eq!(view.module(0).unwrap().entry.paddr, m0.start);
}

#[test]
fn linux64_never_loads_below_pref_address() {
    // boot.rst (init_size): a relocatable kernel loaded below pref_address
    // moves itself up there before decompressing, so that is where its
    // init_size window must be free; RAM below it does not help.
    let bz = Bz::default().build();
    let ram = kvm_ram(12 << 20).unwrap(); // 16 MiB pref is outside
    assert_eq!(
        plan(&ram, &linux64(&bz)).unwrap_err(),
        LoadError::Linux(pvh_entry::linux::LinuxBootError::NoRoom {
            part: pvh_entry::linux::Part::Kernel,
            size: 0x40_0000,
            align: 0x20_0000
        })
    );
    // An unaligned pref_address: the kernel rounds up to its alignment,
    // and so does the loader.
    let bz = Bz::default().pref_address(0x110_0000).build();
    let ram = kvm_ram(64 << 20).unwrap();
    let p = plan(&ram, &linux64(&bz)).unwrap();
    assert_eq!(p.find(Purpose::Kernel).unwrap().start, 0x120_0000);
    assert_eq!(p.entry(), 0x120_0200);
}

#[test]
fn linux64_non_relocatable_kernel_needs_its_address() {
    let bz = Bz::default().relocatable(false).build();
    let ram = kvm_ram(12 << 20).unwrap();
    assert_eq!(
        plan(&ram, &linux64(&bz)).unwrap_err(),
        LoadError::Linux(pvh_entry::linux::LinuxBootError::NoRoom {
            part: pvh_entry::linux::Part::Kernel,
            size: 0x40_0000,
            align: 0x1000
        })
    );
    let ram = kvm_ram(64 << 20).unwrap();
    assert_eq!(
        plan(&ram, &linux64(&bz))
            .unwrap()
            .find(Purpose::Kernel)
            .unwrap()
            .start,
        0x100_0000
    );
}

#[test]
fn linux64_checks_cmdline_size_protocol_and_64bit_flag() {
    let ram = kvm_ram(64 << 20).unwrap();
    let bz = Bz::default().cmdline_size(5).build();
    assert_eq!(
        plan(&ram, &linux64(&bz)).unwrap_err(),
        LoadError::Linux(pvh_entry::linux::LinuxBootError::CmdlineTooLong { len: 19, max: 5 })
    );
    let bz = Bz::default().version(0x020b).build();
    assert!(matches!(
        plan(&ram, &linux64(&bz)),
        Err(LoadError::Linux(pvh_entry::linux::LinuxBootError::Image(
            pvh_bootparams::ImageError::ProtocolTooOld { found: 0x020b, .. }
        )))
    ));
    let bz = Bz::default().xloadflags(0).build();
    assert_eq!(
        plan(&ram, &linux64(&bz)).unwrap_err(),
        LoadError::Linux(pvh_entry::linux::LinuxBootError::Image(
            pvh_bootparams::ImageError::No64BitEntry
        ))
    );
}

#[test]
fn linux64_initrd_respects_initrd_addr_max() {
    let bz = Bz::default().initrd_addr_max(0x7f_ffff).build();
    let initrd = vec![1u8; 4096];
    let mut config = linux64(&bz);
    config.modules = vec![
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
    ];
    let ram = kvm_ram(64 << 20).unwrap();
    let p = plan(&ram, &config).unwrap();
    let m = p.find(Purpose::Module(0)).unwrap();
    assert!(m.start + m.len <= 0x80_0000, "{m:?}");
    // The second module is not an initrd: top of RAM.
    config.modules.push(
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
    );
    let p = plan(&ram, &config).unwrap();
    assert_eq!(
        p.find(Purpose::Module(1)).unwrap().start,
        (64 << 20) - 0x1000
    );
}

#[test]
fn wrong_image_for_protocol() {
    let ram = kvm_ram(64 << 20).unwrap();
    let elf = simple_elf().build();
    assert_eq!(
        plan(&ram, &linux64(&elf)).unwrap_err(),
        LoadError::WrongImage {
            image: "PVH ELF",
            protocol: "linux64"
        }
    );
    let bz = Bz::default().build();
    let config = BootConfig::new(Kernel::pvh_elf(&bz));
    assert_eq!(
        plan(&ram, &config).unwrap_err(),
        LoadError::WrongImage {
            image: "bzImage",
            protocol: "pvh"
        }
    );
    let config = BootConfig::new(Kernel::pvh_unpack(&elf));
    assert!(matches!(
        plan(&ram, &config),
        Err(LoadError::WrongImage { .. })
    ));
    let junk = [0u8; 100];
    assert!(matches!(
        plan(&ram, &BootConfig::new(Kernel::pvh_elf(&junk))),
        Err(LoadError::UnknownImage { .. })
    ));
}

/// The loaded guest (its placements: the plan borrows `bz`, local here)
/// and its memory.
fn unpack_case(payload: Vec<u8>) -> Result<(LoadedGuest, vm_memory::GuestMemoryMmap), LoadError> {
    let bz = Bz::default().payload(payload).build();
    let config = BootConfig::new(Kernel::pvh_unpack(&bz));
    let ram = kvm_ram(16 << 20).unwrap();
    let p = plan(&ram, &config)?;
    let mem = memory(16 << 20, 0xaa);
    let g = load(&mem, &p)?;
    assert_eq!(g.cpu.rip, 0x10_0010);
    assert_eq!(g.cpu.mode, EntryMode::Protected32);
    Ok((g, mem))
}

#[test]
fn pvh_unpack_gzip_xz_zstd() {
    let elf = simple_elf().build();
    for (name, packed) in [("gzip", gzip(&elf)), ("xz", xz(&elf)), ("zstd", zstd(&elf))] {
        let (p, mem) =
            unpack_case(with_size(packed, elf.len())).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read(&mem, 0x10_0000, 0x40), vec![0x90; 0x40], "{name}");
        assert_eq!(read(&mem, 0x10_1020, 0x10), vec![0; 0x10], "{name}: BSS");
        assert!(p.find(Purpose::Segment(1)).is_some());
    }
}

#[test]
fn pvh_unpack_errors_are_typed() {
    let elf = simple_elf().build();
    let lz4 = vec![0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        unpack_case(lz4).unwrap_err(),
        LoadError::UnsupportedCompression("lz4")
    );
    let bzip2 = b"BZh91AY&SY".to_vec();
    assert_eq!(
        unpack_case(bzip2).unwrap_err(),
        LoadError::UnsupportedCompression("bzip2")
    );
    let mut broken = xz(&elf);
    let mid = broken.len() / 2;
    broken[mid] ^= 0xff;
    assert!(matches!(
        unpack_case(with_size(broken, elf.len())),
        Err(LoadError::Decompress { format: "xz", .. })
    ));
    // Announced size too small: the output is longer.
    assert!(matches!(
        unpack_case(with_size(gzip(&elf), elf.len() - 1)),
        Err(LoadError::DecompressedTooLarge { .. })
    ));
    // Announced size too large: the output is shorter.
    assert!(matches!(
        unpack_case(with_size(zstd(&elf), elf.len() + 1)),
        Err(LoadError::Decompress { format: "zstd", .. })
    ));
    // Absurd announced size: refused before decompressing, and the
    // message says so rather than claiming the output was too large.
    let e = unpack_case(with_size(gzip(&elf), 0xffff_ffff)).unwrap_err();
    assert_eq!(
        e,
        LoadError::AnnouncedTooLarge {
            announced: 0xffff_ffff,
            limit: pvh_loader::MAX_UNPACKED
        }
    );
    assert!(
        e.to_string().contains("announces 0xffffffff")
            && e.to_string().contains("nothing was decompressed"),
        "{e}"
    );
    // A compressed non-ELF.
    let text = b"not an elf at all".repeat(10);
    assert!(unpack_case(with_size(gzip(&text), text.len())).is_err());
}

#[test]
fn stub_boot_passes_bzimage_as_module_0_and_initrd_as_module_1() {
    let stub = simple_elf().build();
    let bz = Bz::default().build();
    let initrd = vec![0x33u8; 3000];
    let config = BootConfig::new(Kernel::Stub {
        bzimage: &bz,
        stub: &stub,
        relocation: Relocation::Preferred,
        subarch: SubarchPolicy::Pc,
    })
    .cmdline(b"root=/dev/ram0")
    .modules(vec![
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
    ]);
    let ram = kvm_ram(64 << 20).unwrap();
    let mem = memory(64 << 20, 0);
    let p = plan(&ram, &config).unwrap();
    let g = load(&mem, &p).unwrap();
    assert_eq!((g.cpu.rip, g.cpu.mode), (0x10_0010, EntryMode::Protected32));
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, g.start_info).unwrap();
    let mods: Vec<_> = view.modules().collect();
    assert_eq!(mods.len(), 2);
    assert_eq!(mods[0].entry.size, bz.len() as u64);
    assert_eq!(read(&mem, mods[0].entry.paddr, bz.len()), bz);
    assert_eq!(read(&mem, mods[1].entry.paddr, 3000), initrd);
    let mut buf = [0u8; 32];
    assert_eq!(view.read_cmdline(&mut buf).unwrap(), b"root=/dev/ram0");
    // A non-ELF stub is rejected.
    let bad = config.clone().kernel(Kernel::stub(&bz, &bz));
    assert!(plan(&ram, &bad).is_err());
}

#[test]
fn linux64_nothing_outside_planned_ram() {
    let bz = Bz::default().build();
    let initrd = vec![2u8; 1 << 20];
    let mut config = linux64(&bz);
    config.modules = vec![
        Module::new(&initrd)
            .cmdline(None)
            .above_4g(false)
            .headroom(0),
    ];
    let ram = kvm_ram(32 << 20).unwrap();
    let mem = memory(40 << 20, 0x5a);
    load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    assert!(read(&mem, 32 << 20, 8 << 20).iter().all(|&b| b == 0x5a));
}

#[test]
fn xz_dictionary_beyond_the_memory_limit_is_refused() {
    // An .xz whose LZMA2 dictionary is 1.5 GiB (filter property byte 40):
    // the decoder must refuse it, not allocate.
    let elf = simple_elf().build();
    let mut packed = xz(&elf);
    // Block header: size byte at 12, flags at 13, filter id 0x21 at 14,
    // props size 1 at 15, dictionary byte at 16 (no BCJ filter from xz2's
    // default preset). Patch it and fix the block header's CRC32.
    assert_eq!(&packed[14..16], &[0x21, 0x01]);
    packed[16] = 40;
    let header_len = (usize::from(packed[12]) + 1) * 4;
    let crc = crc32(&packed[12..12 + header_len - 4]);
    packed[12 + header_len - 4..12 + header_len].copy_from_slice(&crc.to_le_bytes());
    let bz = Bz::default().payload(with_size(packed, elf.len())).build();
    let image = pvh_bootparams::BzImage::parse(&bz).unwrap();
    match unpack(&image) {
        Err(LoadError::Decompress {
            format: "xz",
            reason,
        }) => assert!(!reason.is_empty()),
        other => panic!("expected a refused dictionary, got {other:?}"),
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
