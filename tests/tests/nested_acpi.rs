//! Several vCPUs, ACPI and power-off for stock Linux on a real KVM: the
//! nested arrangement of `tests/tests/nested_linux.rs` (QEMU TCG L1 running
//! Debian's kernel with Debian's kvm modules, a static `pvh` booting
//! Debian's kernel as L2).
//!
//! - `acpi-pvh`, `acpi-stub`, `acpi-linux`: `pvh boot --cpus 2` (ACPI is
//!   the default) through each boot path; L2's init prints `nproc` (must
//!   be 2: both processors come from the MADT, the second started by
//!   Linux with INIT/SIPI), the ACPI tables Linux found and its zero page,
//!   then `poweroff -f`, which must end `pvh` with status 0 through the
//!   FADT's sleep control register ("guest powered off").
//! - `acpi-reboot`: the same with `reboot -f` (`reboot=k`): the i8042
//!   reset still ends `pvh` with 0 under a hardware-reduced FADT (Linux
//!   then finds no i8042, but `reboot=k` writes 0xfe to port 0x64 itself),
//!   so the nested_linux.rs modes, now booted with ACPI, still end.
//! - `noacpi`: `pvh boot --cpus 1 --no-acpi`; L2 reaches its marker, sees
//!   one CPU and no ACPI, and `reboot -f` (i8042 reset) ends `pvh` with 0.
//!
//! Every ACPI mode also checks that Linux took the RSDP at 0xe0000 (its
//! `ACPI: RSDP` line) and kept ttyS0 (the init's lines arrive at all: the
//! DSDT's COM1 device gives it IRQ 4). Linux's own PVH entry hands the RSDP
//! over through `x86_init.acpi.get_root_pointer`, not its zero page, so
//! `acpi_rsdp_addr` is checked on the stub and Linux 64-bit paths only.

use pvh_tests::nested::{end_line, field, parse_zero_page, section};
use pvh_tests::*;
use std::path::PathBuf;
use std::time::Duration;

/// (name, pvh arguments, how L2's init ends).
const MODES: [(&str, &str, &str); 5] = [
    ("acpi-pvh", "--kernel /l2/vmlinux --cpus 2", "poweroff"),
    ("acpi-stub", "--kernel /l2/bzImage --cpus 2", "poweroff"),
    (
        "acpi-linux",
        "--kernel /l2/bzImage --boot-protocol linux --cpus 2",
        "poweroff",
    ),
    ("acpi-reboot", "--kernel /l2/bzImage --cpus 2", "reboot"),
    (
        "noacpi",
        "--kernel /l2/vmlinux --cpus 1 --no-acpi",
        "reboot",
    ),
];
const L2_MEMORY: &str = "256M";
/// docs/loader.md: the RSDP is at the start of the ACPI region, 0xe0000.
const RSDP: u64 = 0xe_0000;

const L2_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "L2-MARKER $(cat /proc/cmdline)"
echo "L2-NPROC $(nproc)"
echo "L2-ACPI-TABLES $(ls /sys/firmware/acpi/tables 2>/dev/null | tr '\n' ' ')"
echo "L2-ZP $(hexdump -v -e '1/1 "%02x"' /sys/kernel/boot_params/data)"
dmesg | grep -i -E 'ACPI|smpboot|x86: Booting|Brought up|APIC|i8042|ttyS|clocksource' | sed 's/^/L2-DMESG /'
case "$(cat /proc/cmdline)" in
*pvhend=poweroff*) poweroff -f ;;
*) reboot -f ;;
esac
"#;

/// What L1 runs: `pvh boot` once per mode.
fn l1_script() -> String {
    let mut s = String::new();
    for (name, args, end) in MODES {
        // --timeout: a guest that cannot power off must not hang L1.
        s.push_str(&format!(
            "echo NESTED-BEGIN {name}\n/pvh boot {args} --timeout 240 --initrd /l2/initrd.cpio \
             --memory {L2_MEMORY} --cmdline 'console=ttyS0 reboot=k panic=-1 quiet pvhmode={name} \
             pvhend={end}'\necho NESTED-END {name} rc=$?\n"
        ));
    }
    s
}

#[test]
fn linux_smp_acpi_and_poweroff_on_nested_kvm() {
    let (Some(vmlinux), Some(bzimage)) = (artifact("vmlinux"), artifact("bzImage")) else {
        return;
    };
    let dir = scratch_dir("nested-acpi");
    let l2_initrd = dir.join("l2-initrd.cpio");
    initramfs(&l2_initrd, L2_INIT, &[]);
    let files: Vec<(PathBuf, &str)> = vec![
        (vmlinux, "/l2/vmlinux"),
        (bzimage, "/l2/bzImage"),
        (l2_initrd, "/l2/initrd.cpio"),
    ];
    let Some(log) = nested::run_l1(&dir, &l1_script(), &files, Duration::from_secs(1200)) else {
        return;
    };

    for (mode, _, end) in MODES {
        let lines = section(&log, mode);
        let all = lines.join("\n");
        let cmdline =
            field(&lines, "L2-MARKER").unwrap_or_else(|| panic!("{mode}: no L2 marker:\n{all}"));
        assert!(
            cmdline.contains(&format!("pvhmode={mode}")),
            "{mode}: /proc/cmdline is {cmdline:?}"
        );
        let bp = parse_zero_page(field(&lines, "L2-ZP").expect("zero page dump"));
        let tables = field(&lines, "L2-ACPI-TABLES").unwrap_or("");
        let nproc = field(&lines, "L2-NPROC");
        if mode.starts_with("acpi") {
            assert_eq!(nproc, Some("2"), "{mode}: nproc with --cpus 2:\n{all}");
            let rsdp_line = format!("ACPI: RSDP {RSDP:#018X} ");
            assert!(
                lines.iter().any(|l| l.contains(&rsdp_line)),
                "{mode}: no {rsdp_line:?} in dmesg:\n{all}"
            );
            let expected = if mode == "acpi-pvh" { 0 } else { RSDP };
            assert_eq!({ bp.acpi_rsdp_addr }, expected, "{mode}: acpi_rsdp_addr");
            for sig in ["APIC", "DSDT", "FACP"] {
                assert!(
                    tables.split_whitespace().any(|t| t == sig),
                    "{mode}: Linux lists ACPI tables {tables:?}, no {sig}"
                );
            }
            let how = if end == "poweroff" {
                "pvh: guest powered off"
            } else {
                "pvh: guest reset"
            };
            assert!(
                lines.iter().any(|l| l.contains(how)),
                "{mode}: no {how:?}:\n{all}"
            );
        } else {
            assert_eq!(nproc, Some("1"), "{mode}: nproc:\n{all}");
            assert_eq!({ bp.acpi_rsdp_addr }, 0, "{mode}: acpi_rsdp_addr");
            assert_eq!(tables, "", "{mode}: ACPI tables without ACPI");
            assert!(
                lines.iter().any(|l| l.contains("pvh: guest reset")),
                "{mode}: pvh did not report the reset:\n{all}"
            );
        }
        let rc = end_line(&log, mode);
        assert!(rc.ends_with("rc=0"), "{mode}: pvh exit: {rc}\n{all}");
    }
}
