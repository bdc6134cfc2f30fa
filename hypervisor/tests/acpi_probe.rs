//! `pvh boot --cpus N` with ACPI (the default) and `--no-acpi`, seen from
//! inside the built-in probe guest: the RSDP start_info names, the XSDT
//! entries and the processors the MADT lists. Expected values are the
//! test's inputs (N) and the documented layout (docs/loader.md: the ACPI
//! region starts at 0xe0000), never read back from the VMM.

mod common;

use std::process::{Command, Stdio};

use common::kvm_available;
use pvh_guests::report::Report;

/// docs/loader.md: the ACPI region (RSDP first) is the start of the BIOS
/// area.
const RSDP: u64 = 0xe_0000;

/// Runs `pvh boot ARGS` (the probe) with a watchdog timeout inside pvh.
fn pvh(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pvh"))
        .arg("boot")
        .args(["--timeout", "120"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn pvh");
    (
        out.status.code().expect("killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_acpi(cpus: u8) {
    let n = cpus.to_string();
    let (status, out, err) = pvh(&["--cpus", &n]);
    assert_eq!(status, 0, "--cpus {cpus}: {err}\n{out}");
    let r = Report::parse(&out).unwrap();
    assert!(r.done(), "{out}");
    assert_eq!(r.num("rsdp_paddr"), Some(RSDP), "{out}");
    assert_eq!(r.get("rsdp.found_by"), Some("start_info"));
    assert_eq!(r.num("rsdp.valid"), Some(1), "{out}");
    assert_eq!(r.num("rsdp.revision"), Some(2), "XSDT needs revision 2");
    assert_eq!(r.num("acpi.xsdt.count"), Some(2), "FADT and MADT: {out}");
    let mut sigs = Vec::new();
    for i in 0..2 {
        let entry = r.get(&format!("acpi.xsdt.{i}")).expect("xsdt entry");
        let fields: Vec<&str> = entry.split(',').collect();
        assert_eq!(fields.len(), 3, "{entry}");
        assert_eq!(fields[2], "1", "entry {i} invalid: {entry}");
        // Every table lies in the 4 KiB region after the RSDP.
        let addr = pvh_guests::report::parse_num(fields[1]).unwrap();
        assert!((RSDP..RSDP + 0x1000).contains(&addr), "{entry}");
        sigs.push(fields[0].to_owned());
    }
    sigs.sort();
    assert_eq!(sigs, ["APIC", "FACP"]);
    assert_eq!(r.num("acpi.madt.cpus"), Some(u64::from(cpus)), "{out}");
    assert_eq!(r.num("acpi.madt.disabled_cpus"), Some(0));
    assert_eq!(r.num("acpi.madt.ioapics"), Some(1));
    assert_eq!(r.num("zeropage.acpi_rsdp_addr"), Some(RSDP), "{out}");
    // The tables cost no RAM: the map is the one without ACPI (the region
    // is inside the RESERVED ISA window).
    assert_eq!(r.get("zeropage.e820.1"), Some("0xa0000,0x60000,2"), "{out}");
}

#[test]
fn one_vcpu_gets_valid_acpi_tables() {
    if !kvm_available("one_vcpu_gets_valid_acpi_tables") {
        return;
    }
    check_acpi(1);
}

#[test]
fn four_vcpus_are_listed_in_the_madt() {
    if !kvm_available("four_vcpus_are_listed_in_the_madt") {
        return;
    }
    check_acpi(4);
}

#[test]
fn thirty_two_vcpus_are_listed_in_the_madt() {
    if !kvm_available("thirty_two_vcpus_are_listed_in_the_madt") {
        return;
    }
    check_acpi(32);
}

#[test]
fn no_acpi_leaves_rsdp_paddr_zero() {
    if !kvm_available("no_acpi_leaves_rsdp_paddr_zero") {
        return;
    }
    for extra in [&[][..], &["--cpus", "2"][..]] {
        let mut args = vec!["--no-acpi"];
        args.extend_from_slice(extra);
        let (status, out, err) = pvh(&args);
        assert_eq!(status, 0, "{args:?}: {err}");
        let r = Report::parse(&out).unwrap();
        assert!(r.done(), "{out}");
        assert_eq!(r.num("rsdp_paddr"), Some(0));
        assert_eq!(r.num("zeropage.acpi_rsdp_addr"), Some(0));
        // Nothing in the BIOS area either: the scan finds no RSDP.
        assert_eq!(r.get("rsdp.found_by"), Some("none"), "{out}");
        assert_eq!(r.num("rsdp.valid"), Some(0));
    }
}

#[test]
fn plan_shows_the_acpi_and_mp_table_regions() {
    let (status, out, err) = pvh(&["--plan", "--cpus", "2"]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("rsdp 0xe0000"), "{out}");
    assert!(out.contains("ACPI tables"), "{out}");
    // The MP table comes with them, at 0xf0000.
    assert!(
        out.lines()
            .any(|l| l.contains("MP table") && l.contains("0x0000000f0000..")),
        "{out}"
    );
    let (status, out, _) = pvh(&["--plan", "--no-acpi"]);
    assert_eq!(status, 0);
    assert!(
        !out.contains("ACPI tables") && !out.contains("rsdp") && !out.contains("MP table"),
        "{out}"
    );
}

#[test]
fn cpu_counts_outside_1_to_32_are_usage_errors() {
    // Refused by the argument parser before KVM is opened: status 64.
    for n in ["0", "33", "255", "two"] {
        let (status, out, err) = pvh(&["--cpus", n]);
        assert_eq!(status, 64, "--cpus {n}: {err}");
        assert!(err.contains("--cpus"), "{err}");
        assert!(out.is_empty());
    }
}
