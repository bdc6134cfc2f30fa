//! The stub copes with every deviation the conformance matrix found
//! (docs/conformance.md), on the host: each start_info below is laid out as
//! the hypervisor lays it out (addresses, map order, RSDP, modules without
//! command lines, from the probe's reports), and goes through the stub's
//! own decision, `pvh_entry::linux::stub::plan`, over `SliceMemory`; the
//! kernel is a synthetic bzImage module (`pvh_bootparams::synth`).
//!
//! - Firecracker: `rsdp_paddr` 0 with tables at 0xe0000 (found by scan,
//!   passed to Linux), its map out of order;
//! - Cloud Hypervisor: tables outside the map (in the ISA hole, which the
//!   translation reserves; never overwritten);
//! - qboot: a trailing empty map entry, the start_info in reserved memory;
//! - maps that split or repeat RAM, or put ACPI tables in RAM.

use pvh_bootparams::synth::SynthBzImage;
use pvh_bootparams::{BootParams, E820Type};
use pvh_entry::acpi::rsdp::FoundBy;
use pvh_entry::linux::stub::{Inputs, Scratch, StubPlan, plan};
use pvh_entry::{
    MemmapEntry, MemmapType, ModuleSpec, Placement, SifFlags, SliceMemory, StartInfoSpec,
    write_start_info,
};

/// Guest memory modelled: the first 256 MiB.
const MEM: usize = 0x1000_0000;
/// Where the synthetic kernel module is.
const KERNEL_AT: u64 = 0x300_0000;
/// The initrd, at the top of RAM as these hypervisors put it.
const INITRD: (u64, u64) = (0xfff_e000, 0x1388);
/// What the stub's own image would be.
const STUB_IMAGE: (u64, u64) = (0x10_0000, 0x14_0000);

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

/// Writes an RSDP (revision 2) at `at` naming an XSDT at `tables + 0x40`
/// that lists a MADT at `tables + 0x100`, all checksummed (ACPI 6.5
/// offsets), and returns the three ranges: RSDP 36 bytes, XSDT 36 + 8,
/// MADT 36 + 16.
fn put_acpi(mem: &mut [u8], at: u64, tables: u64) -> [(u64, u64); 3] {
    let sdt = |sig: &[u8; 4], body: &[u8]| {
        let mut t = sig.to_vec();
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[1, 0]);
        t.extend_from_slice(&[b'X'; 26]);
        t.extend_from_slice(body);
        t[9] = 0u8.wrapping_sub(sum(&t));
        t
    };
    let mut madt_body = 0xfee0_0000u32.to_le_bytes().to_vec();
    madt_body.extend_from_slice(&[0; 4]);
    madt_body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    let madt = sdt(b"APIC", &madt_body);
    let xsdt = sdt(b"XSDT", &(tables + 0x100).to_le_bytes());
    let mut r = [0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[15] = 2;
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&(tables + 0x40).to_le_bytes());
    r[8] = 0u8.wrapping_sub(sum(&r[..20]));
    r[32] = 0u8.wrapping_sub(sum(&r));
    let (a, t) = (at as usize, tables as usize);
    mem[a..a + 36].copy_from_slice(&r);
    mem[t + 0x40..t + 0x40 + xsdt.len()].copy_from_slice(&xsdt);
    mem[t + 0x100..t + 0x100 + madt.len()].copy_from_slice(&madt);
    [
        (at, at + 36),
        (tables + 0x40, tables + 0x40 + 44),
        (tables + 0x100, tables + 0x100 + 52),
    ]
}

/// A hypervisor's hand-over.
struct HandOver<'a> {
    memmap: &'a [MemmapEntry],
    rsdp_paddr: u64,
    placement: Placement,
    /// Where the RSDP and the other tables are.
    acpi_at: Option<(u64, u64)>,
}

/// Firecracker's layout (start_info 0x6000, module list 0x6040, map 0x7000,
/// command line 0x20000; Cloud Hypervisor's is the same).
fn firecracker_layout(
    memmap: &[MemmapEntry],
    rsdp_paddr: u64,
    acpi_at: Option<(u64, u64)>,
) -> HandOver<'_> {
    HandOver {
        memmap,
        rsdp_paddr,
        placement: Placement {
            start_info: 0x6000,
            modlist: 0x6040,
            memmap: 0x7000,
            strings: 0x2_0000,
        },
        acpi_at,
    }
}

/// What the stub decided, and the ACPI ranges the memory held.
struct Outcome {
    params: BootParams,
    rsdp: Option<(u64, FoundBy)>,
    runtime: (u64, u64),
    zero_page: (u64, u64),
    acpi: Vec<(u64, u64)>,
}

fn stub(h: &HandOver<'_>) -> Outcome {
    let mut bytes = vec![0u8; MEM];
    let acpi = h
        .acpi_at
        .map(|(at, tables)| put_acpi(&mut bytes, at, tables).to_vec())
        .unwrap_or_default();
    let kernel = SynthBzImage::default().build();
    let k = KERNEL_AT as usize;
    bytes[k..k + kernel.len()].copy_from_slice(&kernel);
    let mut mem = SliceMemory::new(0, bytes);
    // The kernel and the initrd as modules, neither with a command line.
    let modules = [
        ModuleSpec::new(KERNEL_AT, kernel.len() as u64),
        ModuleSpec::new(INITRD.0, INITRD.1),
    ];
    let spec = StartInfoSpec::new(1)
        .flags(SifFlags::empty())
        .cmdline(Some(b"console=ttyS0"))
        .rsdp_paddr(h.rsdp_paddr)
        .modules(&modules)
        .memmap(h.memmap);
    write_start_info(&mut mem, &spec, &h.placement).expect("write the start_info");
    let inputs = Inputs::new(h.placement.start_info, STUB_IMAGE);
    let mut scratch = Box::new(Scratch::new());
    let p: StubPlan<'_> = plan(&mem, &inputs, &mut scratch).expect("the stub's plan");
    let pl = &p.placement;
    assert_eq!(pl.initrd, Some(INITRD), "module 1 is the initrd");
    Outcome {
        params: p.params,
        rsdp: p.rsdp,
        runtime: (pl.runtime, pl.runtime + pl.window),
        zero_page: (pl.zero_page, pl.zero_page + p.zero_page_size),
        acpi,
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Neither the kernel's window nor the zero page lands on an ACPI table.
fn assert_tables_clear(o: &Outcome) {
    assert!(!o.acpi.is_empty());
    for &t in &o.acpi {
        assert!(
            !overlaps(o.runtime, t),
            "kernel {:x?} over table {t:x?}",
            o.runtime
        );
        assert!(
            !overlaps(o.zero_page, t),
            "zero page {:x?} over table {t:x?}",
            o.zero_page
        );
    }
}

fn ram(addr: u64, size: u64) -> MemmapEntry {
    MemmapEntry::new(addr, size, MemmapType::RAM)
}

fn reserved(addr: u64, size: u64) -> MemmapEntry {
    MemmapEntry::new(addr, size, MemmapType::RESERVED)
}

#[test]
fn firecracker_rsdp_found_by_scan_and_passed_to_linux() {
    // Firecracker's map, in its order.
    let map = [
        ram(0, 0x9_fc00),
        reserved(0x9_fc00, 0x4_0400),
        reserved(0xeec0_0000, 0x1000_0000),
        ram(0x10_0000, 0xff0_0000),
    ];
    let o = stub(&firecracker_layout(&map, 0, Some((0xe_0000, 0xe_0000))));
    assert_eq!(o.rsdp, Some((0xe_0000, FoundBy::Scan)));
    assert_eq!({ o.params.acpi_rsdp_addr }, 0xe_0000);
    // The zero page's map is sorted although Firecracker's is not.
    let e820 = o.params.e820();
    assert!(e820.windows(2).all(|w| w[0].addr <= w[1].addr), "{e820:x?}");
    assert_eq!(o.runtime.0, 0x100_0000);
    assert_tables_clear(&o);
}

#[test]
fn cloud_hypervisor_tables_outside_the_map_stay_reserved_and_untouched() {
    // RAM to 640 KiB, then from 1 MiB; RSDP and tables at 0xa0000, in the
    // unlisted hole.
    let map = [
        ram(0, 0xa_0000),
        ram(0x10_0000, 0xff0_0000),
        reserved(0xe800_0000, 0x1000_0000),
    ];
    let o = stub(&firecracker_layout(
        &map,
        0xa_0000,
        Some((0xa_0000, 0xa_0000)),
    ));
    assert_eq!(o.rsdp, Some((0xa_0000, FoundBy::StartInfo)));
    assert_eq!({ o.params.acpi_rsdp_addr }, 0xa_0000);
    // The kernel's map reserves where the tables are.
    assert!(
        o.params.e820().iter().any(|e| {
            let (a, s, t) = (e.addr, e.size, e.type_);
            t == E820Type::RESERVED && a <= 0xa_0000 && a + s >= 0xa_0134
        }),
        "{:x?}",
        o.params.e820()
    );
    assert_tables_clear(&o);
}

#[test]
fn tables_in_ram_are_never_overwritten() {
    // The RSDP in the BIOS area, the XSDT and MADT in what the map calls
    // RAM at 64 KiB, where the zero page would go.
    let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0xff0_0000)];
    let o = stub(&firecracker_layout(
        &map,
        0xe_0000,
        Some((0xe_0000, 0x1_0000)),
    ));
    assert!(o.zero_page.0 >= 0x1_0134, "{:#x}", o.zero_page.0);
    assert_tables_clear(&o);
}

#[test]
fn qboot_trailing_empty_entry_and_start_info_in_reserved_memory() {
    // qboot: start_info in its BIOS area (reserved), the module list on its
    // stack in low RAM, the map ending with an all-zero entry.
    let map = [
        ram(0, 0x9_fc00),
        reserved(0x9_fc00, 0x400),
        reserved(0xf_0000, 0x1_0000),
        ram(0x10_0000, 0xff0_0000),
        reserved(0xfeff_c000, 0x4000),
        MemmapEntry::new(0, 0, MemmapType(0)),
    ];
    let o = stub(&HandOver {
        memmap: &map,
        rsdp_paddr: 0xf_34d0,
        placement: Placement {
            start_info: 0xf_31e0,
            modlist: 0x7b80,
            memmap: 0xf_3300,
            strings: 0xf_3400,
        },
        acpi_at: Some((0xf_34d0, 0xf_34d0)),
    });
    // The empty entry is gone from the kernel's map.
    assert!(o.params.e820().iter().all(|e| { e.size } > 0));
    assert_eq!(o.runtime.0, 0x100_0000);
    assert_tables_clear(&o);
}

#[test]
fn ram_split_or_listed_twice_still_holds_the_kernel_at_its_preferred_address() {
    // RAM split at 17 MiB and 32-48 MiB listed twice: the synthetic
    // kernel's window at its preferred 16 MiB (4 MiB) is inside no single
    // raw entry; on the canonical map it is free.
    let map = [
        ram(0, 0x9_fc00),
        ram(0x110_0000, 0xef0_0000),
        ram(0x10_0000, 0x100_0000),
        ram(0x200_0000, 0x100_0000),
    ];
    let o = stub(&firecracker_layout(&map, 0, None));
    assert_eq!(o.rsdp, None);
    assert_eq!(o.runtime.0, 0x100_0000);
}
