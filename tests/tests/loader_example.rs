//! pvh-loader's example VMM (`loader/examples/boot_kvm.rs`: kvm-ioctls,
//! vm-memory and pvh-loader, nothing of pvh-hypervisor) boots the probe on
//! /dev/kvm. The example's file is compiled here as a module, so the test
//! runs the very code a reader copies.

#[path = "../../loader/examples/boot_kvm.rs"]
mod boot_kvm;

use pvh_guests::harness::skip_or_fail;
use pvh_guests::report::Report;

#[test]
fn example_vmm_boots_the_probe() {
    if !std::path::Path::new("/dev/kvm").exists() {
        return skip_or_fail("/dev/kvm is absent: the example VMM needs KVM");
    }
    let run = boot_kvm::boot(pvh_guests::PROBE, b"console=ttyS0 example=1").unwrap();
    let text = String::from_utf8_lossy(&run.console);
    let report = Report::parse(&text).unwrap();
    assert_eq!(report.get("probe.start"), Some("1"), "{text}");
    assert_eq!(report.get("magic"), Some("0x336ec578"), "{text}");
    assert_eq!(
        report.get("cmdline"),
        Some("console=ttyS0 example=1"),
        "{text}"
    );
    assert!(report.done(), "{text}");
    // Every MUST rule the probe checks holds (the ACPI ones are N/A: this
    // VMM has no ACPI), and it said so through the exit port.
    assert_eq!(report.get("verdict.must_failed"), Some("0"), "{text}");
    assert_eq!(
        report.get("verdict.start_info.magic"),
        Some("PASS MUST"),
        "{text}"
    );
    assert_eq!(run.end, boot_kvm::End::Exit(0), "{text}");
}
