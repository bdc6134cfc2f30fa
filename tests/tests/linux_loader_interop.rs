//! Interoperability with rust-vmm linux-loader 0.14, in both directions.
//!
//! - A start_info written by pvh's `write_start_info` into vm-memory guest
//!   memory reads back, field for field, as linux-loader's
//!   `hvm_start_info`, `hvm_modlist_entry` and `hvm_memmap_table_entry`.
//! - A start_info written by linux-loader's `PvhBootConfigurator` (plus its
//!   `load_cmdline`) reads back through pvh's validating `StartInfoView`.
//! - A zero page: pvh's `BootParams` bytes read as linux-loader's
//!   `boot_params`, and linux-loader's `LinuxBootConfigurator` output read as
//!   pvh's `BootParams`.
//!
//! Values are random (proptest); the expected values are the generated ones,
//! never something computed by the code under test.

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams as LlBootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{Cmdline, load_cmdline};
use proptest::prelude::*;
use pvh_bootparams::{BootParams, E820Entry, E820Type, ZERO_PAGE_SIZE};
use pvh_entry::{
    MemmapEntry, MemmapType, ModuleSpec, OwnedModule, OwnedStartInfo, PhysRead, PhysWrite,
    Placement, SifFlags, StartInfoSpec, StartInfoView, VmMemory, write_start_info,
};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM for every test: 4 MiB from address 0.
const MEM_SIZE: usize = 4 << 20;
/// `XEN_HVM_START_MAGIC_VALUE`, written out rather than taken from pvh.
const MAGIC: u32 = 0x336e_c578;
/// Where the start_info (and the zero page) go.
const START_INFO_ADDR: u64 = 0x6000;
const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Module contents live here and above, away from the tables.
const MODULES_START: u64 = 0x10_0000;

fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory")
}

/// The NUL-terminated string at `addr`, without its NUL.
fn read_c_string(mem: &GuestMemoryMmap, addr: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b: u8 = mem
            .read_obj(GuestAddress(addr + out.len() as u64))
            .expect("string inside memory");
        if b == 0 {
            return out;
        }
        out.push(b);
        assert!(out.len() < 4096, "unterminated string at {addr:#x}");
    }
}

/// A command line linux-loader's `Cmdline` accepts (printable ASCII, no
/// leading or trailing blanks).
fn cmdline() -> impl Strategy<Value = String> {
    "[a-z0-9=._,/-]{1,24}( [a-zA-Z0-9=._,/-]{1,24}){0,4}"
}

/// A module: contents inside guest RAM above [`MODULES_START`], and maybe a
/// command line.
#[derive(Debug, Clone)]
struct ModuleCase {
    paddr: u64,
    size: u64,
    cmdline: Option<String>,
}

fn module() -> impl Strategy<Value = ModuleCase> {
    (
        MODULES_START..0x30_0000u64,
        0..0x10_0000u64,
        proptest::option::of(cmdline()),
    )
        .prop_map(|(paddr, size, cmdline)| ModuleCase {
            paddr,
            size,
            cmdline,
        })
}

/// Everything a start_info says.
#[derive(Debug, Clone)]
struct StartInfoCase {
    version: u32,
    flags: u32,
    rsdp: u64,
    cmdline: Option<String>,
    modules: Vec<ModuleCase>,
    /// (addr, size, type), any values: neither side interprets them.
    memmap: Vec<(u64, u64, u32)>,
}

fn start_info_case(min_memmap: usize) -> impl Strategy<Value = StartInfoCase> {
    (
        0..=1u32,
        any::<u32>(),
        any::<u64>(),
        proptest::option::of(cmdline()),
        proptest::collection::vec(module(), 0..5),
        proptest::collection::vec(any::<(u64, u64, u32)>(), min_memmap..40),
    )
        .prop_map(
            |(version, flags, rsdp, cmdline, modules, memmap)| StartInfoCase {
                version,
                flags,
                rsdp,
                cmdline,
                modules,
                memmap,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// pvh writes, linux-loader's structs read.
    #[test]
    fn pvh_start_info_reads_as_linux_loader_structs(case in start_info_case(0)) {
        let mem = guest_memory();
        let memmap: Vec<MemmapEntry> = if case.version == 0 {
            Vec::new()
        } else {
            case.memmap
                .iter()
                .map(|&(a, s, t)| MemmapEntry::new(a, s, MemmapType(t)))
                .collect()
        };
        let modules: Vec<ModuleSpec<'_>> = case
            .modules
            .iter()
            .map(|m| {
                ModuleSpec::new(m.paddr, m.size).cmdline(m.cmdline.as_deref().map(str::as_bytes))
            })
            .collect();
        let spec = StartInfoSpec::new(case.version)
            .flags(SifFlags::from_bits_retain(case.flags))
            .cmdline(case.cmdline.as_deref().map(str::as_bytes))
            .rsdp_paddr(case.rsdp)
            .modules(&modules)
            .memmap(&memmap);
        let (placement, _) = Placement::packed(START_INFO_ADDR, &spec).unwrap();
        write_start_info(&mut VmMemory(&mem), &spec, &placement).unwrap();

        let si: hvm_start_info = mem.read_obj(GuestAddress(START_INFO_ADDR)).unwrap();
        prop_assert_eq!(si.magic, MAGIC);
        prop_assert_eq!(si.version, case.version);
        prop_assert_eq!(si.flags, case.flags);
        prop_assert_eq!(si.nr_modules as usize, case.modules.len());
        prop_assert_eq!(si.rsdp_paddr, case.rsdp);
        match &case.cmdline {
            Some(s) => {
                prop_assert_ne!(si.cmdline_paddr, 0);
                prop_assert_eq!(read_c_string(&mem, si.cmdline_paddr), s.as_bytes());
            }
            None => prop_assert_eq!(si.cmdline_paddr, 0),
        }
        if case.modules.is_empty() {
            prop_assert_eq!(si.modlist_paddr, 0);
        } else {
            prop_assert_ne!(si.modlist_paddr, 0);
        }
        for (i, m) in case.modules.iter().enumerate() {
            let addr = si.modlist_paddr + (i * size_of::<hvm_modlist_entry>()) as u64;
            let e: hvm_modlist_entry = mem.read_obj(GuestAddress(addr)).unwrap();
            prop_assert_eq!(e.paddr, m.paddr);
            prop_assert_eq!(e.size, m.size);
            prop_assert_eq!(e.reserved, 0);
            match &m.cmdline {
                Some(s) => prop_assert_eq!(read_c_string(&mem, e.cmdline_paddr), s.as_bytes()),
                None => prop_assert_eq!(e.cmdline_paddr, 0),
            }
        }
        // Version 0 is 48 bytes: what follows belongs to someone else.
        if case.version == 1 {
            prop_assert_eq!(si.reserved, 0);
            prop_assert_eq!(si.memmap_entries as usize, case.memmap.len());
            if case.memmap.is_empty() {
                prop_assert_eq!(si.memmap_paddr, 0);
            }
            for (i, &(addr, size, type_)) in case.memmap.iter().enumerate() {
                let at = si.memmap_paddr + (i * size_of::<hvm_memmap_table_entry>()) as u64;
                let e: hvm_memmap_table_entry = mem.read_obj(GuestAddress(at)).unwrap();
                prop_assert_eq!(
                    e,
                    hvm_memmap_table_entry { addr, size, type_, reserved: 0 }
                );
            }
        }
    }

    /// linux-loader writes, pvh's validating reader reads.
    #[test]
    fn linux_loader_start_info_reads_through_pvh(case in start_info_case(1)) {
        // linux-loader writes the tables where it is told: fixed, disjoint
        // places below the modules.
        const MODLIST: u64 = 0x8000;
        const MEMMAP: u64 = 0x9000;
        const CMDLINE: u64 = 0x2_0000;
        const MODULE_CMDLINES: u64 = 0x2_1000;
        const MODULE_CMDLINE_STRIDE: u64 = 0x100;

        let mem = guest_memory();
        let write_cmdline = |addr: u64, s: &str| {
            let mut c = Cmdline::new(4096).unwrap();
            c.insert_str(s).unwrap();
            load_cmdline(&mem, GuestAddress(addr), &c).unwrap();
            addr
        };
        let cmdline_paddr = case.cmdline.as_deref().map_or(0, |s| write_cmdline(CMDLINE, s));
        let modlist: Vec<hvm_modlist_entry> = case
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| hvm_modlist_entry {
                paddr: m.paddr,
                size: m.size,
                cmdline_paddr: m.cmdline.as_deref().map_or(0, |s| {
                    write_cmdline(MODULE_CMDLINES + i as u64 * MODULE_CMDLINE_STRIDE, s)
                }),
                reserved: 0,
            })
            .collect();
        let memmap: Vec<hvm_memmap_table_entry> = case
            .memmap
            .iter()
            .map(|&(addr, size, type_)| hvm_memmap_table_entry { addr, size, type_, reserved: 0 })
            .collect();
        let si = hvm_start_info {
            magic: MAGIC,
            version: case.version,
            flags: case.flags,
            nr_modules: modlist.len() as u32,
            modlist_paddr: if modlist.is_empty() { 0 } else { MODLIST },
            cmdline_paddr,
            rsdp_paddr: case.rsdp,
            memmap_paddr: MEMMAP,
            memmap_entries: memmap.len() as u32,
            reserved: 0,
        };
        let mut params = LlBootParams::new(&si, GuestAddress(START_INFO_ADDR));
        params.set_sections(&memmap, GuestAddress(MEMMAP));
        if !modlist.is_empty() {
            params.set_modules(&modlist, GuestAddress(MODLIST));
        }
        PvhBootConfigurator::write_bootparams(&params, &mem).unwrap();

        let vm = VmMemory(&mem);
        let view = StartInfoView::read(&vm, START_INFO_ADDR).unwrap();
        let expected = OwnedStartInfo {
            addr: START_INFO_ADDR,
            version: case.version,
            flags: SifFlags::from_bits_retain(case.flags),
            cmdline: case.cmdline.as_ref().map(|s| s.as_bytes().to_vec()),
            rsdp_paddr: case.rsdp,
            modules: case
                .modules
                .iter()
                .map(|m| OwnedModule {
                    paddr: m.paddr,
                    size: m.size,
                    cmdline: m.cmdline.as_ref().map(|s| s.as_bytes().to_vec()),
                })
                .collect(),
            // A version-0 start_info has no memory map, whatever follows it.
            memmap: (case.version == 1).then(|| {
                case.memmap
                    .iter()
                    .map(|&(a, s, t)| MemmapEntry::new(a, s, MemmapType(t)))
                    .collect()
            }),
        };
        prop_assert_eq!(view.to_owned(), expected);
        // The borrowing accessors agree with the owned copy.
        prop_assert_eq!(view.module_count() as usize, case.modules.len());
        prop_assert_eq!(view.memmap().count(), if case.version == 1 { case.memmap.len() } else { 0 });
        let mut buf = [0u8; 256];
        prop_assert_eq!(
            view.read_cmdline(&mut buf).map(<[u8]>::to_vec),
            case.cmdline.as_ref().map(|s| s.as_bytes().to_vec())
        );
    }
}

/// Asserts that every field linux-loader names in `boot_params` (other than
/// the firmware sub-structures pvh keeps as opaque bytes) has the same value
/// in both views of one page.
fn assert_same_zero_page(p: &BootParams, l: &boot_params) -> Result<(), TestCaseError> {
    macro_rules! same {
        ($a:expr, $b:expr; $($f:ident),* $(,)?) => {
            $(prop_assert_eq!({ $a.$f }, { $b.$f }, "field {}", stringify!($f));)*
        };
    }
    same!(p, l;
        _pad2, tboot_addr, acpi_rsdp_addr, _pad3, hd0_info, hd1_info, ext_ramdisk_image,
        ext_ramdisk_size, ext_cmd_line_ptr, _pad4, cc_blob_address, alt_mem_k, scratch,
        e820_entries, eddbuf_entries, edd_mbr_sig_buf_entries, kbd_status, secure_boot,
        _pad5, sentinel, _pad6, _pad7, edd_mbr_sig_buffer, _pad8, _pad9,
    );
    let (ph, lh) = ({ p.hdr }, { l.hdr });
    same!(ph, lh;
        setup_sects, root_flags, syssize, ram_size, vid_mode, root_dev, boot_flag, jump,
        header, version, realmode_swtch, start_sys_seg, kernel_version, type_of_loader,
        loadflags, setup_move_size, code32_start, ramdisk_image, ramdisk_size,
        bootsect_kludge, heap_end_ptr, ext_loader_ver, ext_loader_type, cmd_line_ptr,
        initrd_addr_max, kernel_alignment, relocatable_kernel, min_alignment, xloadflags,
        cmdline_size, hardware_subarch_data, payload_offset, payload_length, setup_data,
        pref_address, init_size, handover_offset, kernel_info_offset,
    );
    prop_assert_eq!({ ph.hardware_subarch }.0, { lh.hardware_subarch });
    let (pt, lt) = ({ p.e820_table }, { l.e820_table });
    for (i, (pe, le)) in pt.iter().zip(lt.iter()).enumerate() {
        prop_assert_eq!({ pe.addr }, { le.addr }, "e820_table[{}].addr", i);
        prop_assert_eq!({ pe.size }, { le.size }, "e820_table[{}].size", i);
        prop_assert_eq!({ pe.type_ }.0, { le.r#type }, "e820_table[{}].type", i);
    }
    // The sub-structures pvh keeps opaque (screen_info, edid_info, eddbuf,
    // ...) are covered by comparing the whole pages.
    prop_assert!(p.as_page()[..] == *l.as_slice(), "pages differ");
    Ok(())
}

fn random_page() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), ZERO_PAGE_SIZE)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// pvh's zero page, read as linux-loader's `boot_params`.
    #[test]
    fn pvh_zero_page_reads_as_linux_loader(bytes in random_page()) {
        let bp = BootParams::from_page(bytes.as_slice().try_into().unwrap());
        let mem = guest_memory();
        VmMemory(&mem).write(ZERO_PAGE_ADDR, bp.as_page()).unwrap();
        let l: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_ADDR)).unwrap();
        assert_same_zero_page(&bp, &l)?;
    }

    /// linux-loader's `LinuxBootConfigurator` output, read by pvh.
    #[test]
    fn linux_loader_zero_page_reads_through_pvh(bytes in random_page()) {
        let l: boot_params = *boot_params::from_slice(&bytes).unwrap();
        let mem = guest_memory();
        let params = LlBootParams::new(&l, GuestAddress(ZERO_PAGE_ADDR));
        LinuxBootConfigurator::write_bootparams(&params, &mem).unwrap();
        let mut page = [0u8; ZERO_PAGE_SIZE];
        VmMemory(&mem).read(ZERO_PAGE_ADDR, &mut page).unwrap();
        assert_same_zero_page(&BootParams::from_page(&page), &l)?;
    }

    /// pvh's 64-bit setters and e820 table, seen by linux-loader's split
    /// fields; and linux-loader's split fields seen by pvh's getters.
    #[test]
    fn split_pointers_and_e820_agree(
        cmdline in any::<u64>(),
        ramdisk in any::<u64>(),
        ramdisk_size in any::<u64>(),
        rsdp in any::<u64>(),
        e820 in proptest::collection::vec(any::<(u64, u64, u32)>(), 0..=128),
    ) {
        let mem = guest_memory();
        // pvh → linux-loader.
        let mut bp = BootParams::zeroed();
        bp.set_cmd_line_ptr(cmdline);
        bp.set_ramdisk(ramdisk, ramdisk_size);
        bp.acpi_rsdp_addr = rsdp;
        for (slot, &(a, s, t)) in bp.e820_table.iter_mut().zip(&e820) {
            *slot = E820Entry::new(a, s, E820Type(t));
        }
        bp.e820_entries = e820.len() as u8;
        VmMemory(&mem).write(ZERO_PAGE_ADDR, bp.as_page()).unwrap();
        let l: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_ADDR)).unwrap();
        let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        prop_assert_eq!(join(l.hdr.cmd_line_ptr, l.ext_cmd_line_ptr), cmdline);
        prop_assert_eq!(join(l.hdr.ramdisk_image, l.ext_ramdisk_image), ramdisk);
        prop_assert_eq!(join(l.hdr.ramdisk_size, l.ext_ramdisk_size), ramdisk_size);
        prop_assert_eq!({ l.acpi_rsdp_addr }, rsdp);
        prop_assert_eq!(l.e820_entries as usize, e820.len());
        let table = { l.e820_table };
        for (i, &(a, s, t)) in e820.iter().enumerate() {
            let e: boot_e820_entry = table[i];
            prop_assert_eq!(({ e.addr }, { e.size }, { e.r#type }), (a, s, t));
        }

        // linux-loader → pvh.
        let mut l = boot_params::default();
        l.hdr.cmd_line_ptr = cmdline as u32;
        l.ext_cmd_line_ptr = (cmdline >> 32) as u32;
        l.hdr.ramdisk_image = ramdisk as u32;
        l.ext_ramdisk_image = (ramdisk >> 32) as u32;
        l.hdr.ramdisk_size = ramdisk_size as u32;
        l.ext_ramdisk_size = (ramdisk_size >> 32) as u32;
        l.acpi_rsdp_addr = rsdp;
        for (i, &(addr, size, r#type)) in e820.iter().enumerate() {
            l.e820_table[i] = boot_e820_entry { addr, size, r#type };
        }
        l.e820_entries = e820.len() as u8;
        let params = LlBootParams::new(&l, GuestAddress(ZERO_PAGE_ADDR));
        LinuxBootConfigurator::write_bootparams(&params, &mem).unwrap();
        let mut page = [0u8; ZERO_PAGE_SIZE];
        VmMemory(&mem).read(ZERO_PAGE_ADDR, &mut page).unwrap();
        let bp = BootParams::from_page(&page);
        prop_assert_eq!(bp.cmd_line_ptr(), cmdline);
        prop_assert_eq!(bp.ramdisk_image(), ramdisk);
        prop_assert_eq!(bp.ramdisk_size(), ramdisk_size);
        prop_assert_eq!({ bp.acpi_rsdp_addr }, rsdp);
        let got: Vec<(u64, u64, u32)> =
            bp.e820().iter().map(|e| (e.addr, e.size, e.type_.0)).collect();
        prop_assert_eq!(got, e820);
    }
}

/// End to end with linux-loader on both sides: a start_info written by
/// `PvhBootConfigurator` is translated by pvh, and the zero page is read as
/// linux-loader's `boot_params`. The expected table is written out by hand.
#[test]
fn linux_loader_start_info_translates_to_a_zero_page_linux_loader_reads() {
    const CMDLINE: u64 = 0x2_0000;
    const MODLIST: u64 = 0x8000;
    const MEMMAP: u64 = 0x9000;
    const INITRD: u64 = 0x20_0000;
    let mem = guest_memory();
    let mut cmdline = Cmdline::new(256).unwrap();
    cmdline.insert_str("console=ttyS0 root=/dev/vda").unwrap();
    load_cmdline(&mem, GuestAddress(CMDLINE), &cmdline).unwrap();
    let modules = [hvm_modlist_entry {
        paddr: INITRD,
        size: 0x1_2345,
        cmdline_paddr: 0,
        reserved: 0,
    }];
    // Unsorted, with a Xen OEM type; the ISA hole is not described.
    let entry = |addr, size, type_| hvm_memmap_table_entry {
        addr,
        size,
        type_,
        reserved: 0,
    };
    let memmap = [
        entry(0x10_0000, 0x3f0_0000, 1),
        entry(0xfec0_0000, 0x1000, 0xf000_0002),
        entry(0, 0x9_fc00, 1),
        entry(0x9_fc00, 0x400, 2),
        entry(0x400_0000, 0x1_0000, 3),
    ];
    let si = hvm_start_info {
        magic: MAGIC,
        version: 1,
        flags: 0,
        nr_modules: 1,
        modlist_paddr: MODLIST,
        cmdline_paddr: CMDLINE,
        rsdp_paddr: 0xe_0000,
        memmap_paddr: MEMMAP,
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    let mut params = LlBootParams::new(&si, GuestAddress(START_INFO_ADDR));
    params.set_sections(&memmap, GuestAddress(MEMMAP));
    params.set_modules(&modules, GuestAddress(MODLIST));
    PvhBootConfigurator::write_bootparams(&params, &mem).unwrap();

    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, START_INFO_ADDR).unwrap();
    let zp = pvh_entry::translate_owned(&view, &Default::default()).unwrap();
    assert!(zp.e820_ext.is_empty());
    VmMemory(&mem)
        .write(ZERO_PAGE_ADDR, zp.params.as_page())
        .unwrap();

    let l: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_ADDR)).unwrap();
    let hdr = l.hdr;
    assert_eq!({ hdr.boot_flag }, 0xaa55);
    assert_eq!({ hdr.header }, u32::from_le_bytes(*b"HdrS"));
    assert_eq!({ hdr.type_of_loader }, 0xff);
    assert_eq!({ hdr.cmd_line_ptr }, CMDLINE as u32);
    assert_eq!({ l.ext_cmd_line_ptr }, 0);
    assert_eq!({ hdr.ramdisk_image }, INITRD as u32);
    assert_eq!({ hdr.ramdisk_size }, 0x1_2345);
    assert_eq!({ hdr.hardware_subarch }, 0);
    assert_eq!({ l.acpi_rsdp_addr }, 0xe_0000);
    assert_eq!({ l.sentinel }, 0);
    let expected: [(u64, u64, u32); 6] = [
        (0, 0x9_fc00, 1),
        (0x9_fc00, 0x400, 2),
        (0xa_0000, 0x6_0000, 2),
        (0x10_0000, 0x3f0_0000, 1),
        (0x400_0000, 0x1_0000, 3),
        (0xfec0_0000, 0x1000, 2),
    ];
    assert_eq!(l.e820_entries as usize, expected.len());
    let table = { l.e820_table };
    let got: Vec<(u64, u64, u32)> = table[..expected.len()]
        .iter()
        .map(|e| ({ e.addr }, { e.size }, { e.r#type }))
        .collect();
    assert_eq!(got, expected);
    let mut cmd = [0u8; 28];
    mem.read_slice(&mut cmd, GuestAddress(u64::from(hdr.cmd_line_ptr)))
        .unwrap();
    assert_eq!(&cmd, b"console=ttyS0 root=/dev/vda\0");
}
