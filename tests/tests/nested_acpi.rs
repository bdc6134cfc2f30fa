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
//!   one CPU and no ACPI (and no MP table), and `reboot -f` (i8042 reset)
//!   ends `pvh` with 0.
//! - `mptable`: `pvh boot --cpus 2` with `acpi=off` on the kernel command
//!   line: Linux ignores the ACPI tables and takes both CPUs and the ISA
//!   interrupt routing (ttyS0's IRQ 4, the RTC's IRQ 8) from the MP table
//!   at 0xf0000, which every mode but `noacpi` must find.
//!
//! Every mode checks the RTC: Linux's `rtc_cmos` probes (through the DSDT's
//! PNP0B00 device with GSI 8 under ACPI, through the legacy platform device
//! with IRQ 8 without) and registers rtc0, `hwclock` in L2 reads the host's
//! time (within the test's run, give or take two minutes of TCG clock
//! drift), and, under ACPI (where Linux makes the RTC wakeup-capable and
//! offers `wakealarm`), a wake alarm five seconds ahead arrives as an rtc0
//! interrupt (/proc/interrupts; L2 waits up to 60 s for the alarm to go
//! off, so a loaded host only makes it slower).
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

/// (name, pvh arguments, how L2's init ends, extra kernel arguments).
const MODES: [(&str, &str, &str, &str); 6] = [
    ("acpi-pvh", "--kernel /l2/vmlinux --cpus 2", "poweroff", ""),
    ("acpi-stub", "--kernel /l2/bzImage --cpus 2", "poweroff", ""),
    (
        "acpi-linux",
        "--kernel /l2/bzImage --boot-protocol linux --cpus 2",
        "poweroff",
        "",
    ),
    ("acpi-reboot", "--kernel /l2/bzImage --cpus 2", "reboot", ""),
    (
        "noacpi",
        "--kernel /l2/vmlinux --cpus 1 --no-acpi",
        "reboot",
        "",
    ),
    (
        "mptable",
        "--kernel /l2/vmlinux --cpus 2",
        "reboot",
        "acpi=off",
    ),
];
/// Where Linux finds pvh's MP floating pointer (`pvh_entry::machine::MP_TABLE_ADDR`).
const MP_FOUND: &str = "found SMP MP-table at [mem 0x000f0000-0x000f000f]";
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
mount -t devtmpfs dev /dev
echo "L2-HWCLOCK $(hwclock -r -u -f /dev/rtc0 2>&1)"
echo "L2-RTC-EPOCH $(cat /sys/class/rtc/rtc0/since_epoch 2>&1)"
if [ -e /sys/class/rtc/rtc0/wakealarm ]; then
  echo +5 > /sys/class/rtc/rtc0/wakealarm
  n=0
  while [ -n "$(cat /sys/class/rtc/rtc0/wakealarm)" ] && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done
fi
echo "L2-RTC-IRQ $(grep rtc0 /proc/interrupts)"
dmesg | grep -i -E 'MP-table|ACPI|smpboot|x86: Booting|Brought up|APIC|i8042|ttyS|clocksource|rtc' | sed 's/^/L2-DMESG /'
case "$(cat /proc/cmdline)" in
*pvhend=poweroff*) poweroff -f ;;
*) reboot -f ;;
esac
"#;

/// What L1 runs: `pvh boot` once per mode.
fn l1_script() -> String {
    let mut s = String::new();
    for (name, args, end, extra) in MODES {
        // --timeout: a guest that cannot power off must not hang L1.
        s.push_str(&format!(
            "echo NESTED-BEGIN {name}\n/pvh boot {args} --timeout 240 --initrd /l2/initrd.cpio \
             --memory {L2_MEMORY} --cmdline 'console=ttyS0 reboot=k panic=-1 quiet pvhmode={name} \
             pvhend={end} {extra}'\necho NESTED-END {name} rc=$?\n"
        ));
    }
    s
}

/// Seconds since the epoch of busybox `hwclock -r -u`'s output, e.g.
/// `Thu Dec  3 15:40:00 2026  0.000000 seconds` (C locale, UTC).
fn hwclock_epoch(out: &str) -> Option<i64> {
    let w: Vec<&str> = out.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| Some(m) == w.get(1))? as i64 + 1;
    let day: i64 = w.get(2)?.parse().ok()?;
    let hms: Vec<i64> = w
        .get(3)?
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let year: i64 = w.get(4)?.parse().ok()?;
    // Days from 1970-01-01, counted year by year and month by month.
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days: i64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += lengths[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
    Some(days * 86_400 + hms.first()? * 3600 + hms.get(1)? * 60 + hms.get(2)?)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn hwclock_output_parses() {
    // date -u -d @1764776400 (2025-12-03T15:40:00Z, a Wednesday).
    assert_eq!(
        hwclock_epoch("Wed Dec  3 15:40:00 2025  0.000000 seconds"),
        Some(1_764_776_400)
    );
    assert_eq!(hwclock_epoch("Thu Jan  1 00:00:00 1970"), Some(0));
    assert_eq!(hwclock_epoch("hwclock: can't open '/dev/rtc0'"), None);
}

#[test]
fn linux_smp_acpi_and_poweroff_on_nested_kvm() {
    let started = unix_now();
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

    let ended = unix_now();
    // TCG clocks in L1 may drift a little from the host's.
    let window = (started - 120)..=(ended + 120);

    for (mode, _, end, _) in MODES {
        let lines = section(&log, mode);
        let all = lines.join("\n");
        // The RTC: probed, read by hwclock and by the driver, and its
        // alarm interrupt delivered.
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("rtc_cmos") && l.contains("failed")),
            "{mode}: rtc_cmos failed:\n{all}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("rtc_cmos") && l.contains("registered as rtc0")),
            "{mode}: no rtc0 from rtc_cmos:\n{all}"
        );
        let hwclock = field(&lines, "L2-HWCLOCK").unwrap_or("");
        let t = hwclock_epoch(hwclock)
            .unwrap_or_else(|| panic!("{mode}: hwclock said {hwclock:?}:\n{all}"));
        assert!(
            window.contains(&t),
            "{mode}: hwclock {t} outside {window:?}"
        );
        let epoch: i64 = field(&lines, "L2-RTC-EPOCH")
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("{mode}: no rtc0 since_epoch:\n{all}"));
        assert!(window.contains(&epoch), "{mode}: since_epoch {epoch}");
        let irq_line = field(&lines, "L2-RTC-IRQ").unwrap_or("");
        let irqs: u64 = irq_line
            .split_whitespace()
            .skip(1)
            .map_while(|c| c.parse::<u64>().ok())
            .sum();
        // Linux offers `wakealarm` only for a wakeup-capable RTC, which
        // ACPI makes it; without ACPI the interrupt is not exercised.
        assert!(
            !mode.starts_with("acpi") || irqs >= 1,
            "{mode}: no rtc0 interrupt after the wake alarm: {irq_line:?}\n{all}"
        );
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
            // `acpi=off`: the CPUs come from the MP table alone, and
            // ttyS0 (these lines) and the RTC (checked above) get their
            // interrupts through its ISA routing.
            let cpus = if mode == "mptable" { "2" } else { "1" };
            assert_eq!(nproc, Some(cpus), "{mode}: nproc:\n{all}");
            assert_eq!({ bp.acpi_rsdp_addr }, 0, "{mode}: acpi_rsdp_addr");
            assert_eq!(tables, "", "{mode}: ACPI tables without ACPI");
            assert!(
                lines.iter().any(|l| l.contains("pvh: guest reset")),
                "{mode}: pvh did not report the reset:\n{all}"
            );
        }
        // The MP table comes with the ACPI tables, and only with them.
        let mp_found = lines.iter().any(|l| l.contains(MP_FOUND));
        assert_eq!(
            mp_found,
            mode != "noacpi",
            "{mode}: {MP_FOUND:?} in dmesg:\n{all}"
        );
        let rc = end_line(&log, mode);
        assert!(rc.ends_with("rc=0"), "{mode}: pvh exit: {rc}\n{all}");
    }
}
