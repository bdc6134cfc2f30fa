//! `pvh_entry::conformance` as a VMM author would use it: on the host,
//! over the guest memory their VMM prepared, without booting anything.
//! Here: what `pvh boot` prepares (`pvh_loader::plan` and `load`, then the
//! ACPI tables `pvh_acpi` builds for `pvh`'s devices, as `boot::prepare` does) for
//! the probe, over memory sizes from 64 MiB to past 4 GiB and from zero to
//! 32 modules. Every rule that can be judged without a CPU passes, MUST and
//! SHOULD; the CPU rules are N/A (no entry state here; the matrix in
//! `conformance_matrix.rs` judges them on a real boot).

use pvh_entry::conformance::{Outcome, RULES, Subject, check};
use pvh_entry::{SifFlags, VmMemory};
use pvh_loader::Kernel;
use pvh_loader::{BootConfig, ElfImage, GuestRam, Module, load, plan};
use vm_memory::{GuestAddress, GuestMemoryMmap};

fn judge(memory: u64, modules: usize, cpus: u8) {
    let probe = pvh_guests::PROBE;
    let contents: Vec<Vec<u8>> = (0..modules)
        .map(|i| vec![i as u8; 1000 + 4096 * i])
        .collect();
    let cmdlines: Vec<String> = (0..modules).map(|i| format!("module{i} x=y")).collect();
    let config = pvh_hypervisor::boot::acpi_config(
        BootConfig::new(Kernel::pvh_elf(probe))
            .cmdline(b"console=ttyS0 pvh.conformance=1")
            .modules(
                contents
                    .iter()
                    .zip(&cmdlines)
                    .map(|(bytes, c)| {
                        Module::new(bytes).cmdline((modules % 2 == 0).then_some(c.as_bytes()))
                    })
                    .collect(),
            )
            .flags(SifFlags::empty()),
    );
    let ram = GuestRam::new(memory).unwrap();
    let plan = plan(&ram, &config).unwrap();
    let ranges: Vec<(GuestAddress, usize)> = ram
        .regions()
        .iter()
        .map(|&(a, l)| (GuestAddress(a), l as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&ranges).unwrap();
    let guest = load(&mem, &plan).unwrap();
    let region = plan.acpi().clone().expect("an ACPI region");
    pvh_acpi::build(
        &pvh_hypervisor::devices::acpi_platform(),
        region.start,
        cpus,
    )
    .unwrap()
    .write_to(&mem, &region, plan.rsdp())
    .unwrap();

    let elf = ElfImage::parse(probe).unwrap();
    let start = elf.segments.iter().map(|s| s.paddr).min().unwrap();
    let end = elf
        .segments
        .iter()
        .map(|s| s.paddr + s.memsz)
        .max()
        .unwrap();
    let view = VmMemory(&mem);
    let subject = Subject {
        mem: &view,
        start_info: guest.start_info,
        entry: None,
        image: Some(start..end),
        fallback_map: None,
        xen: false,
    };
    let mut seen = 0;
    check(&subject, &mut |f| {
        seen += 1;
        let cpu = f.rule.id.starts_with("entry.") || f.rule.id.starts_with("elf.");
        let no_modules = modules == 0 && f.rule.id.starts_with("modules.");
        let expected = if cpu || no_modules {
            Outcome::NotApplicable
        } else {
            Outcome::Pass
        };
        assert_eq!(
            f.outcome, expected,
            "{memory:#x} bytes, {modules} modules: {} {}",
            f.rule.id, f.note
        );
    });
    assert_eq!(seen, RULES.len());
}

#[test]
fn pvh_layouts_pass_every_memory_rule() {
    for (memory, modules, cpus) in [
        (64 << 20, 0, 1),
        (128 << 20, 2, 2),
        (512 << 20, 1, 4),
        (2 << 30, 32, 32),
        (4608 << 20, 3, 1),
    ] {
        judge(memory, modules, cpus);
    }
}
