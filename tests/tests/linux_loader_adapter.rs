//! pvh-loader's linux-loader adapter (`pvh_loader::linux_loader`, feature
//! `linux-loader`) against linux-loader itself, on the probe ELF.
//!
//! - linux-loader's documented PVH flow (`Elf::load` with the PVH note,
//!   the VMM's own start_info, memory map, module list, `load_cmdline`,
//!   then `PvhBootConfigurator::write_bootparams`) and the adapter's
//!   drop-ins (`PvhElfLoader`, `PvhConfigurator`) on the same inputs leave
//!   guest memory identical, byte for byte, everywhere.
//! - pvh's own `plan` + `load` and linux-loader's flow given the addresses
//!   pvh chose leave guest memory identical except in the ranges only pvh
//!   writes, by design: the boot GDT and IDT (`Purpose::Gdt`/`Idt`; a
//!   linux-loader VMM builds its own GDT wherever it likes).

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams as LlBootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{Cmdline, KernelLoader, KernelLoaderResult, load_cmdline};
use pvh_entry::StartInfo;
use pvh_loader::linux_loader::{LinuxLoaderAbi, PvhConfigurator, PvhElfLoader};
use pvh_loader::{BootConfig, GuestRam, Kernel, Module, Purpose, load, plan};
use std::io::Cursor;
use std::ops::Range;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// `XEN_HVM_START_MAGIC_VALUE`, written out rather than taken from pvh.
const MAGIC: u32 = 0x336e_c578;
const RAM: u64 = 32 << 20;
/// linux-loader's `highmem_start_address` as Firecracker passes it.
const HIMEM: u64 = 0x10_0000;
const CMDLINE: &str = "console=ttyS0 pvh.adapter=1";
const MODULE_CMDLINE: &str = "initrd.img";

fn memory(ram: &GuestRam) -> GuestMemoryMmap {
    let ranges: Vec<_> = ram
        .regions()
        .iter()
        .map(|&(a, l)| (GuestAddress(a), l as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).unwrap()
}

/// The byte ranges where `a` and `b` differ (same layout on both).
fn differences(a: &GuestMemoryMmap, b: &GuestMemoryMmap) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for (ra, rb) in a.iter().zip(b.iter()) {
        assert_eq!(ra.start_addr(), rb.start_addr());
        let base = ra.start_addr().0;
        let len = ra.len() as usize;
        let mut x = vec![0u8; len];
        let mut y = vec![0u8; len];
        a.read_slice(&mut x, ra.start_addr()).unwrap();
        b.read_slice(&mut y, rb.start_addr()).unwrap();
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            if p != q {
                let at = base + i as u64;
                match out.last_mut() {
                    Some(r) if r.end == at => r.end += 1,
                    _ => out.push(at..at + 1),
                }
            }
        }
    }
    out
}

fn module_bytes() -> Vec<u8> {
    (0..0x1_2345u32).map(|i| (i * 7 + 3) as u8).collect()
}

fn cmdline(s: &str) -> Cmdline {
    let mut c = Cmdline::new(256).unwrap();
    c.insert_str(s).unwrap();
    c
}

/// The start_info a linux-loader VMM builds by hand.
fn start_info(cmdline: u64, modlist: u64, memmap: u64, entries: usize) -> hvm_start_info {
    hvm_start_info {
        magic: MAGIC,
        version: 1,
        flags: 0,
        nr_modules: 1,
        modlist_paddr: modlist,
        cmdline_paddr: cmdline,
        rsdp_paddr: 0,
        memmap_paddr: memmap,
        memmap_entries: entries as u32,
        reserved: 0,
    }
}

/// Where pvh put everything, read from the start_info it wrote.
struct Addresses {
    start_info: u64,
    cmdline: u64,
    modlist: u64,
    memmap: u64,
    module: u64,
    module_cmdline: u64,
}

/// pvh's own plan + load; returns the addresses it chose, the memory map
/// it planned, the placements only pvh writes, and the PVH entry.
fn pvh_native(
    ram: &GuestRam,
    mem: &GuestMemoryMmap,
    module: &[u8],
) -> (Addresses, Vec<hvm_memmap_table_entry>, Vec<Range<u64>>, u64) {
    let config = BootConfig::new(Kernel::pvh_elf(pvh_guests::PROBE))
        .cmdline(CMDLINE.as_bytes())
        .modules(vec![
            Module::new(module).cmdline(Some(MODULE_CMDLINE.as_bytes())),
        ]);
    let plan = plan(ram, &config).unwrap();
    let guest = load(mem, &plan).unwrap();
    let si: hvm_start_info = mem.read_obj(GuestAddress(guest.start_info)).unwrap();
    let ml: hvm_modlist_entry = mem.read_obj(GuestAddress(si.modlist_paddr)).unwrap();
    assert_eq!(ml.size, module.len() as u64);
    let memmap: Vec<hvm_memmap_table_entry> =
        plan.memmap().iter().map(|e| e.to_linux_loader()).collect();
    let only_pvh = plan
        .placements()
        .iter()
        .filter(|p| matches!(p.purpose, Purpose::Gdt | Purpose::Idt))
        .map(|p| p.range())
        .collect();
    let at = Addresses {
        start_info: guest.start_info,
        cmdline: si.cmdline_paddr,
        modlist: si.modlist_paddr,
        memmap: si.memmap_paddr,
        module: ml.paddr,
        module_cmdline: ml.cmdline_paddr,
    };
    (at, memmap, only_pvh, guest.cpu.rip)
}

/// linux-loader's documented PVH flow with kernel loader `K` and boot
/// configurator `C`, at the addresses in `at`.
fn linux_loader_flow<K: KernelLoader, C: BootConfigurator>(
    mem: &GuestMemoryMmap,
    at: &Addresses,
    memmap: &[hvm_memmap_table_entry],
    module: &[u8],
) -> KernelLoaderResult {
    let mut image = Cursor::new(pvh_guests::PROBE);
    let loaded = K::load(mem, None, &mut image, Some(GuestAddress(HIMEM))).unwrap();
    load_cmdline(mem, GuestAddress(at.cmdline), &cmdline(CMDLINE)).unwrap();
    load_cmdline(
        mem,
        GuestAddress(at.module_cmdline),
        &cmdline(MODULE_CMDLINE),
    )
    .unwrap();
    mem.write_slice(module, GuestAddress(at.module)).unwrap();
    let modlist = [hvm_modlist_entry {
        paddr: at.module,
        size: module.len() as u64,
        cmdline_paddr: at.module_cmdline,
        reserved: 0,
    }];
    let si = start_info(at.cmdline, at.modlist, at.memmap, memmap.len());
    let mut params = LlBootParams::new(&si, GuestAddress(at.start_info));
    params.set_sections(memmap, GuestAddress(at.memmap));
    params.set_modules(&modlist, GuestAddress(at.modlist));
    C::write_bootparams(&params, mem).unwrap();
    loaded
}

#[test]
fn adapter_drop_ins_write_what_linux_loader_writes() {
    let ram = GuestRam::new(RAM).unwrap();
    let module = module_bytes();
    let scratch = memory(&ram);
    let (at, memmap, _, entry) = pvh_native(&ram, &scratch, &module);

    let theirs = memory(&ram);
    let ours = memory(&ram);
    let a = linux_loader_flow::<Elf, PvhBootConfigurator>(&theirs, &at, &memmap, &module);
    let b = linux_loader_flow::<PvhElfLoader, PvhConfigurator>(&ours, &at, &memmap, &module);
    assert_eq!(a.kernel_load, b.kernel_load);
    assert_eq!(a.kernel_end, b.kernel_end);
    assert_eq!(a.setup_header.is_none(), b.setup_header.is_none());
    assert_eq!(a.pvh_boot_cap, b.pvh_boot_cap);
    assert_eq!(
        b.pvh_boot_cap,
        PvhBootCapability::PvhEntryPresent(GuestAddress(entry))
    );
    assert_eq!(differences(&theirs, &ours), Vec::<Range<u64>>::new());
}

#[test]
fn pvh_load_writes_what_linux_loader_writes_but_its_own_gdt_and_idt() {
    let ram = GuestRam::new(RAM).unwrap();
    let module = module_bytes();
    let ours = memory(&ram);
    let (at, memmap, only_pvh, entry) = pvh_native(&ram, &ours, &module);
    let theirs = memory(&ram);
    let loaded = linux_loader_flow::<Elf, PvhBootConfigurator>(&theirs, &at, &memmap, &module);
    assert_eq!(
        loaded.pvh_boot_cap,
        PvhBootCapability::PvhEntryPresent(GuestAddress(entry))
    );

    assert_eq!(only_pvh.len(), 2, "a GDT and an IDT: {only_pvh:x?}");
    let diff = differences(&theirs, &ours);
    assert!(!diff.is_empty(), "pvh's GDT is not all zero");
    for d in &diff {
        assert!(
            only_pvh
                .iter()
                .any(|p| p.start <= d.start && d.end <= p.end),
            "{d:x?} differs outside pvh's own GDT/IDT {only_pvh:x?}"
        );
    }
    // And the start_info both wrote reads as what a VMM would have built.
    let si: hvm_start_info = ours.read_obj(GuestAddress(at.start_info)).unwrap();
    let expected = start_info(at.cmdline, at.modlist, at.memmap, memmap.len());
    assert_eq!(
        StartInfo::from_linux_loader(&si),
        StartInfo::from_linux_loader(&expected)
    );
}

#[test]
fn configurator_refuses_what_linux_loader_writes_blindly() {
    let ram = GuestRam::new(RAM).unwrap();
    let mem = memory(&ram);
    let memmap = [hvm_memmap_table_entry {
        addr: 0,
        size: RAM,
        type_: 1,
        reserved: 0,
    }];
    let cases: [(&str, hvm_start_info, u64); 3] = [
        (
            "bad magic",
            hvm_start_info {
                magic: 0,
                ..start_info(0, 0, 0x9000, 1)
            },
            0x9000,
        ),
        ("memmap elsewhere", start_info(0, 0, 0x9000, 1), 0xa000),
        ("entry count", start_info(0, 0, 0x9000, 2), 0x9000),
    ];
    for (what, mut si, memmap_at) in cases {
        si.nr_modules = 0;
        let mut params = LlBootParams::new(&si, GuestAddress(0x8000));
        params.set_sections(&memmap, GuestAddress(memmap_at));
        assert!(
            PvhBootConfigurator::write_bootparams(&params, &mem).is_ok(),
            "{what}: linux-loader accepts it"
        );
        assert!(
            PvhConfigurator::write_bootparams(&params, &mem).is_err(),
            "{what}: pvh refuses it"
        );
    }
}

#[test]
fn kernel_loader_refuses_an_elf_without_a_pvh_note() {
    let ram = GuestRam::new(RAM).unwrap();
    let mem = memory(&ram);
    // The probe with its PT_NOTE program header turned into PT_NULL.
    let mut elf = pvh_guests::PROBE.to_vec();
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes([elf[54], elf[55]]) as usize;
    let phnum = u16::from_le_bytes([elf[56], elf[57]]) as usize;
    let mut notes = 0;
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        if u32::from_le_bytes(elf[h..h + 4].try_into().unwrap()) == 4 {
            elf[h..h + 4].copy_from_slice(&0u32.to_le_bytes());
            notes += 1;
        }
    }
    assert!(notes > 0);
    let loaded = Elf::load(
        &mem,
        None,
        &mut Cursor::new(&elf),
        Some(GuestAddress(HIMEM)),
    )
    .unwrap();
    // linux-loader loads it and reports no PVH entry (its default,
    // `PvhEntryIgnored`, when no note is seen at all).
    assert!(
        !matches!(loaded.pvh_boot_cap, PvhBootCapability::PvhEntryPresent(_)),
        "{:?}",
        loaded.pvh_boot_cap
    );
    let e = PvhElfLoader::load(
        &mem,
        None,
        &mut Cursor::new(&elf),
        Some(GuestAddress(HIMEM)),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            linux_loader::loader::Error::Elf(linux_loader::loader::elf::Error::InvalidPvhNote)
        ),
        "{e:?}"
    );
}

/// Every byte of each linux-loader struct survives the round trip through
/// pvh's type, and the fields land where linux-loader's are.
#[test]
fn abi_conversions_are_byte_copies() {
    use vm_memory::ByteValued;
    let mut si = hvm_start_info::default();
    for (i, b) in si.as_mut_slice().iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    let ours = StartInfo::from_linux_loader(&si);
    assert_eq!(ours.magic, si.magic);
    assert_eq!(ours.memmap_paddr, si.memmap_paddr);
    assert_eq!(ours.to_linux_loader().as_slice(), si.as_slice());

    let mut bp = linux_loader::loader::bootparam::boot_params::default();
    for (i, b) in bp.as_mut_slice().iter_mut().enumerate() {
        *b = (i * 13 + 5) as u8;
    }
    let ours = pvh_bootparams::BootParams::from_linux_loader(&bp);
    assert_eq!({ ours.hdr.cmd_line_ptr }, { bp.hdr.cmd_line_ptr });
    assert_eq!({ ours.acpi_rsdp_addr }, { bp.acpi_rsdp_addr });
    assert_eq!(ours.to_linux_loader().as_slice(), bp.as_slice());

    let e = hvm_memmap_table_entry {
        addr: 1,
        size: 2,
        type_: 3,
        reserved: 4,
    };
    let m = pvh_entry::MemmapEntry::from_linux_loader(&e);
    assert_eq!((m.addr, m.size, m.type_.0, m.reserved), (1, 2, 3, 4));
    let l = hvm_modlist_entry {
        paddr: 5,
        size: 6,
        cmdline_paddr: 7,
        reserved: 8,
    };
    let m = pvh_entry::ModlistEntry::from_linux_loader(&l);
    assert_eq!((m.paddr, m.size, m.cmdline_paddr, m.reserved), (5, 6, 7, 8));
}
