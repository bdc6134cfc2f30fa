//! `pvh-probe` booted by QEMU's two independent PVH start_info builders:
//! qboot (`-M microvm`) and SeaBIOS with the `pvh.bin` option ROM
//! (`-M q35`), both under TCG. The probe reports what it was given; the
//! test compares that with what it passed: the command line, a module of
//! random bytes (size and CRC32 computed here), the RAM size (`-m`), and
//! checks the RSDP and the zero page translated in the guest.
//!
//! Without `qemu-system-x86_64` the tests print "skipped: ..." (and fail
//! under `CI=true`).

use pvh_guests::ExitCode;
use pvh_guests::harness::{run_bounded, skip_or_fail, which};
use pvh_guests::report::{MapEntry, Report, ram_bytes};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RAM given with `-m`, in MiB, for the basic runs.
const RAM_MIB: u64 = 256;
/// RAM for the run with memory above 4 GiB (q35 puts 2 GiB below the
/// PCI hole and the rest from 4 GiB on; TCG allocates lazily).
const HIGH_RAM_MIB: u64 = 4608;
/// How much of `-m` firmware may keep for itself (EBDA, BIOS area, ACPI
/// tables at the top of RAM, qboot/SeaBIOS data): seen 0.4 and 0.5 MiB.
const RESERVED_SLACK: u64 = 4 << 20;
/// The kill deadline for one QEMU run (a run takes well under a second;
/// this bounds a hang, it is not a speed check).
const DEADLINE: Duration = Duration::from_secs(60);

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// xorshift64*: enough randomness for test data without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

struct Run {
    report: Report,
    cmdline: String,
    module: Vec<u8>,
}

/// vCPUs given to QEMU: the MADT must list exactly these.
const CPUS: u8 = 2;

fn boot_probe(machine: &str, ram_mib: u64) -> Option<Run> {
    let Some(qemu) = which("qemu-system-x86_64") else {
        skip_or_fail("qemu-system-x86_64 not found on PATH");
        return None;
    };
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32
        | 1;
    println!("{machine}: seed {seed:#x}");
    // A few KiB, not a multiple of 4 KiB, so a size or page-rounding
    // mistake shows.
    let len = 3000 + (next(&mut seed) % 5000) as usize;
    let module: Vec<u8> = (0..len).map(|_| next(&mut seed) as u8).collect();
    let cmdline = format!(
        "probe-test seed={:016x} x={} a,b=c",
        next(&mut seed),
        next(&mut seed) % 1000
    );
    let file = TempFile(std::env::temp_dir().join(format!(
        "pvh-probe-{machine}-{}-{:x}.bin",
        std::process::id(),
        next(&mut seed)
    )));
    std::fs::write(&file.0, &module).expect("write the module file");

    let mut cmd = Command::new(qemu);
    cmd.args(["-M", &format!("{machine},accel=tcg"), "-cpu", "max"])
        .args(["-m", &ram_mib.to_string()])
        .args(["-smp", &CPUS.to_string()])
        .arg("-kernel")
        .arg(pvh_guests::probe_path())
        .arg("-initrd")
        .arg(&file.0)
        .args(["-append", &cmdline])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args([
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
    let out = run_bounded(&mut cmd, DEADLINE).expect("run qemu");
    assert!(
        !out.timed_out(),
        "{machine}: QEMU killed after {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.code(),
        Some(ExitCode::Success.qemu_status()),
        "{machine}: the probe did not exit with success\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let report = Report::parse(&out.stdout).expect("well-formed probe output");
    assert!(report.done(), "{machine}: no probe.done=1:\n{}", out.stdout);
    Some(Run {
        report,
        cmdline,
        module,
    })
}

fn num(r: &Report, key: &str) -> u64 {
    r.num(key)
        .unwrap_or_else(|| panic!("probe printed no number for {key}: {r:#?}"))
}

fn check(machine: &str, ram_mib: u64) {
    let Some(Run {
        report: r,
        cmdline,
        module,
    }) = boot_probe(machine, ram_mib)
    else {
        return;
    };

    // start_info as QEMU builds it: version 1 with a memory map.
    assert_eq!(num(&r, "magic"), 0x336e_c578);
    assert_eq!(num(&r, "version"), 1);
    assert_eq!(r.get("cmdline"), Some(cmdline.as_str()));
    assert_eq!(num(&r, "nr_modules"), 1);
    assert_eq!(num(&r, "module.0.size"), module.len() as u64);
    assert_eq!(
        num(&r, "module.0.crc32"),
        u64::from(crc32fast::hash(&module)),
        "module contents differ from the file passed with -initrd"
    );
    assert_ne!(num(&r, "module.0.paddr"), 0);

    // Memory map: from the start_info, RAM a little below -m.
    assert_eq!(r.get("memmap.source"), Some("start_info"));
    let map = r.map("memmap");
    assert_eq!(map.len() as u64, num(&r, "memmap_entries"));
    let ram = ram_bytes(&map);
    let given = ram_mib << 20;
    assert!(
        ram <= given && ram >= given - RESERVED_SLACK,
        "{machine}: {ram:#x} bytes of RAM in the map for -m {ram_mib}M: {map:#x?}"
    );
    assert_eq!(num(&r, "ram_bytes"), ram);

    // The identity map covers all RAM (grown past 4 GiB when needed) and
    // the last word of RAM was read through it.
    let ram_top = map
        .iter()
        .filter(|e| e.type_ == 1)
        .map(|e| e.end())
        .max()
        .unwrap_or(0);
    assert_eq!(num(&r, "ram_top"), ram_top);
    assert!(num(&r, "identity_map.top") >= ram_top.max(4 << 30));
    assert_eq!(r.get("ram_top.read"), Some("ok"));

    // ACPI: an RSDP with good checksums, a root table (XSDT from qboot,
    // RSDT from SeaBIOS) whose tables all check, and a MADT listing the
    // -smp processors: QEMU's own tables, read by pvh's decoder.
    assert_eq!(r.get("rsdp.valid"), Some("1"), "{r:#?}");
    let root = if r.get("acpi.xsdt.count").is_some() {
        "acpi.xsdt"
    } else {
        "acpi.rsdt"
    };
    let tables = num(&r, &format!("{root}.count"));
    assert!(tables >= 2, "{machine}: {tables} ACPI tables");
    for i in 0..tables {
        let entry = r.get(&format!("{root}.{i}")).unwrap_or_default();
        assert!(
            entry.ends_with(",1"),
            "{machine}: table {i} is not valid: {entry}"
        );
    }
    assert_eq!(
        num(&r, "acpi.madt.cpus"),
        u64::from(CPUS),
        "{machine}: MADT processors"
    );
    assert!(num(&r, "acpi.madt.ioapics") >= 1);

    // The zero page: same RAM, every RAM range kept, the ISA window not
    // RAM, the initrd = module 0, the command line and RSDP passed on.
    let e820 = r.map("zeropage.e820");
    assert_eq!(e820.len() as u64, num(&r, "zeropage.e820_entries"));
    assert_eq!(ram_bytes(&e820), ram);
    for e in map.iter().filter(|e| e.type_ == 1 && e.size > 0) {
        assert!(e820.contains(e), "RAM range {e:x?} missing from {e820:x?}");
    }
    let isa = |e: &&MapEntry| e.addr < 0x10_0000 && e.end() > 0xa_0000;
    assert!(e820.iter().filter(isa).all(|e| e.type_ != 1), "{e820:x?}");
    assert_eq!(num(&r, "zeropage.ramdisk_image"), num(&r, "module.0.paddr"));
    assert_eq!(num(&r, "zeropage.ramdisk_size"), module.len() as u64);
    assert_eq!(num(&r, "zeropage.cmd_line_ptr"), num(&r, "cmdline_paddr"));
    assert_eq!(num(&r, "zeropage.hardware_subarch"), 0);
    if r.get("rsdp.found_by") == Some("start_info") {
        assert_eq!(num(&r, "zeropage.acpi_rsdp_addr"), num(&r, "rsdp_paddr"));
    }
}

#[test]
fn probe_on_qemu_microvm_qboot() {
    check("microvm", RAM_MIB);
}

#[test]
fn probe_on_qemu_q35_seabios_option_rom() {
    check("q35", RAM_MIB);
}

/// Boots the probe on microvm with `cmdline` and returns (QEMU status,
/// stdout).
fn boot_expecting_failure(cmdline: &str) -> Option<(Option<i32>, String)> {
    let Some(qemu) = which("qemu-system-x86_64") else {
        skip_or_fail("qemu-system-x86_64 not found on PATH");
        return None;
    };
    let mut cmd = Command::new(qemu);
    cmd.args(["-M", "microvm,accel=tcg", "-cpu", "max", "-m", "128"])
        .arg("-kernel")
        .arg(pvh_guests::probe_path())
        .args(["-append", cmdline])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args([
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
    let out = run_bounded(&mut cmd, DEADLINE).expect("run qemu");
    assert!(
        !out.timed_out(),
        "killed after {DEADLINE:?}:\n{}",
        out.stdout
    );
    Some((out.code(), out.stdout))
}

/// A panic prints one `panic:` line and exits with `ExitCode::Panic`.
#[test]
fn probe_panic_is_reported_with_its_exit_code() {
    let Some((code, stdout)) = boot_expecting_failure("probe.panic") else {
        return;
    };
    assert_eq!(code, Some(ExitCode::Panic.qemu_status()), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("panic: "));
    assert!(
        line.is_some_and(|l| l.contains("requested by the command line")),
        "{stdout}"
    );
    assert!(!stdout.contains("probe.done=1"));
}

/// A page fault is caught by the runtime's IDT: one `exception:` line with
/// vector 14 and CR2, and `ExitCode::Fault`, not a triple fault.
#[test]
fn probe_page_fault_is_reported_with_its_exit_code() {
    let Some((code, stdout)) = boot_expecting_failure("x probe.fault") else {
        return;
    };
    assert_eq!(code, Some(ExitCode::Fault.qemu_status()), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("exception: "))
        .unwrap_or_else(|| panic!("no exception line:\n{stdout}"));
    assert!(line.contains("vector=14 "), "{line}");
    assert!(line.contains("cr2=0x400000000000"), "{line}");
}

/// RAM above 4 GiB: the runtime's identity map must grow to reach it.
#[test]
fn probe_on_qemu_q35_with_ram_above_4g() {
    check("q35", HIGH_RAM_MIB);
}
