//! The ACPI region a caller asks for with `BootConfig::acpi`: where the plan
//! puts it, what the memory map says about it, and that start_info (and a
//! translated zero page) point at it.

mod common;

use common::*;
use pvh_entry::{MemmapType, StartInfoView, VmMemory};
use pvh_loader::*;

fn cfg(kernel: &[u8], acpi: Option<u64>) -> BootConfig<'_> {
    BootConfig::new(Kernel::pvh_elf(kernel))
        .cmdline(b"console=ttyS0")
        .acpi(acpi)
}

#[test]
fn region_is_planned_in_the_bios_area_and_named_by_start_info() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mem = memory(16 << 20, 0xaa);
    let config = cfg(&elf, Some(0x1000));
    let plan = plan(&ram, &config).unwrap();
    // 0xe0000: the BIOS area (ACPI 6.5, 5.2.5.1), inside the ISA window.
    assert_eq!(plan.acpi(), Some(0xe_0000..0xe_1000));
    assert_eq!(plan.rsdp(), Some(0xe_0000));
    let placed = plan.find(Purpose::Acpi).expect("ACPI placement");
    assert_eq!((placed.start, placed.len), (0xe_0000, 0x1000));
    // The memory map calls the whole BIOS area RESERVED (never RAM).
    assert!(plan.memmap().iter().any(|e| e.type_ == MemmapType::RESERVED
        && e.addr <= 0xe_0000
        && e.addr + e.size >= 0xe_1000));
    assert!(
        !plan
            .memmap()
            .iter()
            .any(|e| e.type_ == MemmapType::RAM && e.addr < 0xe_1000 && e.addr + e.size > 0xe_0000)
    );
    let guest = load(&mem, &plan).unwrap();
    // The region is zeroed for the caller; the byte after it is untouched.
    assert_eq!(read(&mem, 0xe_0000, 0x1000), vec![0; 0x1000]);
    assert_eq!(read(&mem, 0xe_1000, 1), vec![0xaa]);
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    assert_eq!(view.rsdp_paddr(), Some(0xe_0000));
}

#[test]
fn sizes_round_to_pages_and_too_large_is_refused() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let p = plan(&ram, &cfg(&elf, Some(1))).unwrap();
    assert_eq!(p.acpi(), Some(0xe_0000..0xe_1000));
    let p = plan(&ram, &cfg(&elf, Some(0x2_0000))).unwrap();
    assert_eq!(p.acpi(), Some(0xe_0000..0x10_0000));
    assert!(matches!(
        plan(&ram, &cfg(&elf, Some(0x2_0001))),
        Err(LoadError::NoSpace {
            purpose: Purpose::Acpi,
            size: 0x2_0001,
            ..
        })
    ));
    assert!(matches!(
        plan(&ram, &cfg(&elf, Some(u64::MAX))),
        Err(LoadError::NoSpace {
            purpose: Purpose::Acpi,
            ..
        })
    ));
}

#[test]
fn without_a_region_rsdp_is_the_callers_or_absent() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mem = memory(16 << 20, 0);
    let config = cfg(&elf, None);
    let p = plan(&ram, &config).unwrap();
    assert_eq!((p.acpi().clone(), p.rsdp()), (None, None));
    assert!(p.find(Purpose::Acpi).is_none());
    let guest = load(&mem, &p).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    assert_eq!(view.rsdp_paddr(), None);

    let config = cfg(&elf, None).rsdp(Some(0xf_0000));
    assert_eq!(plan(&ram, &config).unwrap().rsdp(), Some(0xf_0000));
    // A region wins over a caller's address: start_info names the tables
    // the plan reserved.
    let config = cfg(&elf, Some(0x1000)).rsdp(Some(0xf_0000));
    assert_eq!(plan(&ram, &config).unwrap().rsdp(), Some(0xe_0000));
}

/// The MP table region (`BootConfig::mp_table`): at 0xf0000, where guests
/// scan for the floating pointer, RESERVED and zeroed like the ACPI one.
#[test]
fn the_mp_table_region_is_planned_at_0xf0000_beside_the_acpi_region() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    let mem = memory(16 << 20, 0xaa);
    let config = cfg(&elf, Some(0x1000)).mp_table(Some(0x400));
    let p = plan(&ram, &config).unwrap();
    assert_eq!(p.mp_table(), Some(0xf_0000..0xf_1000));
    assert_eq!(p.acpi(), Some(0xe_0000..0xe_1000));
    let placed = p.find(Purpose::MpTable).expect("MP table placement");
    assert_eq!((placed.start, placed.len), (0xf_0000, 0x1000));
    assert_eq!(Purpose::MpTable.to_string(), "MP table");
    assert!(
        !p.memmap()
            .iter()
            .any(|e| e.type_ == MemmapType::RAM && e.addr < 0xf_1000 && e.addr + e.size > 0xf_0000)
    );
    load(&mem, &p).unwrap();
    assert_eq!(read(&mem, 0xf_0000, 0x1000), vec![0; 0x1000]);
    assert_eq!(read(&mem, 0xf_1000, 1), vec![0xaa]);
    // Without it, nothing is planned there.
    assert_eq!(
        plan(&ram, &cfg(&elf, Some(0x1000))).unwrap().mp_table(),
        None
    );
}

#[test]
fn an_mp_table_region_that_is_too_large_or_overlaps_the_acpi_region_is_refused() {
    let elf = simple_elf().build();
    let ram = kvm_ram(16 << 20).unwrap();
    // 0xf0000..1 MiB is all there is.
    let p = plan(&ram, &cfg(&elf, None).mp_table(Some(0x1_0000))).unwrap();
    assert_eq!(p.mp_table(), Some(0xf_0000..0x10_0000));
    assert!(matches!(
        plan(&ram, &cfg(&elf, None).mp_table(Some(0x1_0001))),
        Err(LoadError::NoSpace {
            purpose: Purpose::MpTable,
            ..
        })
    ));
    // An ACPI region reaching past 0xf0000 collides with it.
    assert!(matches!(
        plan(&ram, &cfg(&elf, Some(0x1_1000)).mp_table(Some(1))),
        Err(LoadError::Overlap {
            first: Purpose::MpTable,
            second: Purpose::Acpi,
            ..
        })
    ));
}
