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

use pvh_bootparams::{BootParams, ZERO_PAGE_SIZE};
use pvh_tests::*;
use std::path::PathBuf;
use std::process::Command;
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

/// Builds `pvh` as a static binary, which L1's busybox userland can run.
fn static_pvh() -> PathBuf {
    let target_dir = repo_root().join("target/static");
    let status = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args([
            "build",
            "--release",
            "-p",
            "pvh-hypervisor",
            "--bin",
            "pvh",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "static build of pvh failed");
    target_dir.join("x86_64-unknown-linux-gnu/release/pvh")
}

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

fn l1_init() -> String {
    let mut s = String::from(
        "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
         for m in $(cat /kmods/load-order); do insmod /kmods/$m 2>/dev/null; done\n\
         [ -e /dev/kvm ] && echo L1-KVM-READY\n",
    );
    for (name, args, end) in MODES {
        // --timeout: a guest that cannot power off must not hang L1.
        s.push_str(&format!(
            "echo NESTED-BEGIN {name}\n/pvh boot {args} --timeout 240 --initrd /l2/initrd.cpio \
             --memory {L2_MEMORY} --cmdline 'console=ttyS0 reboot=k panic=-1 quiet pvhmode={name} \
             pvhend={end}'\necho NESTED-END {name} rc=$?\n"
        ));
    }
    s.push_str("reboot -f\n");
    s
}

/// The lines of one mode's section of the L1 console.
fn section<'a>(log: &'a str, mode: &str) -> Vec<&'a str> {
    let begin = format!("NESTED-BEGIN {mode}");
    let end = format!("NESTED-END {mode}");
    log.lines()
        .skip_while(|l| !l.contains(&begin))
        .take_while(|l| !l.contains(&end))
        .collect()
}

fn field<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.split_once(key).map(|(_, v)| v.trim()))
}

fn parse_zero_page(hex: &str) -> BootParams {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes.len(), ZERO_PAGE_SIZE, "zero page dump length");
    BootParams::from_page(bytes.as_slice().try_into().unwrap())
}

#[test]
fn linux_smp_acpi_and_poweroff_on_nested_kvm() {
    if !require(
        have("qemu-system-x86_64"),
        "qemu-system-x86_64 not installed (scripts/setup.sh)",
    ) {
        return;
    }
    let (Some(vmlinux), Some(bzimage), Some(kmods)) =
        (artifact("vmlinux"), artifact("bzImage"), artifact("kmods"))
    else {
        return;
    };
    let dir = scratch_dir("nested-acpi");
    let pvh = static_pvh();

    let l2_initrd = dir.join("l2-initrd.cpio");
    initramfs(&l2_initrd, L2_INIT, &[]);

    let mut files: Vec<(PathBuf, &str)> = vec![
        (pvh, "/pvh"),
        (vmlinux, "/l2/vmlinux"),
        (bzimage, "/l2/bzImage"),
        (l2_initrd, "/l2/initrd.cpio"),
        (kmods.join("load-order"), "/kmods/load-order"),
    ];
    let order = std::fs::read_to_string(kmods.join("load-order")).unwrap();
    let modules: Vec<(PathBuf, String)> = order
        .split_whitespace()
        .map(|m| (kmods.join(m), format!("/kmods/{m}")))
        .collect();
    files.extend(modules.iter().map(|(p, d)| (p.clone(), d.as_str())));
    let l1_initrd = dir.join("l1-initrd.gz");
    initramfs(&l1_initrd, &l1_init(), &files);

    let run = run_with_watchdog(
        Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "q35,accel=tcg",
                "-cpu",
                "EPYC",
                "-m",
                "2048",
                "-smp",
                "1",
            ])
            .args([
                "-nographic",
                "-nodefaults",
                "-serial",
                "stdio",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(artifacts().join("vmlinux"))
            .arg("-initrd")
            .arg(&l1_initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet reboot=k"]),
        Duration::from_secs(1200),
    );
    let log = run.output.replace('\r', "");
    std::fs::write(dir.join("console.log"), &log).unwrap();
    assert!(
        run.status.is_some(),
        "L1 did not finish within the watchdog; console in {}",
        dir.display()
    );
    assert!(log.contains("L1-KVM-READY"), "L1 has no /dev/kvm:\n{log}");

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
        let rc = log
            .lines()
            .find(|l| l.contains(&format!("NESTED-END {mode}")))
            .unwrap_or("");
        assert!(rc.ends_with("rc=0"), "{mode}: pvh exit: {rc}\n{all}");
    }
}
