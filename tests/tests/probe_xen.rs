//! `pvh-probe` as a PVH dom0 of Xen 4.17 (Debian's), itself under QEMU TCG
//! (`-cpu max`: Debian's Xen needs HAP). Xen's dom0 builder is a third,
//! independent start_info builder: version 0, no memory map (the probe
//! asks with `XENMEM_memory_map`), the dom0 command line is the first
//! multiboot module's string minus its first word, and the next module
//! becomes module 0 with its own command line.
//!
//! Needs `qemu-system-x86_64` and the Xen binary from
//! `scripts/fetch-artifacts.sh` (`target/pvh-artifacts/xen`, or
//! `$PVH_ARTIFACTS/xen`); without them it prints "skipped: ..." (and fails
//! under `CI=true`).

use pvh_guests::ExitCode;
use pvh_guests::harness::{artifacts_dir, run_bounded, skip_or_fail, which};
use pvh_guests::report::{Report, ram_bytes};
use std::path::PathBuf;
use std::time::Duration;

/// `dom0_mem`, in MiB.
const DOM0_MIB: u64 = 64;
/// How far dom0's RAM may be from `dom0_mem` (Xen 4.17 was seen to give
/// 0xe2 bytes less: its RAM range ends where it put the RSDP).
const SLACK: u64 = 4 << 20;
/// The kill deadline (a run takes a few seconds; this bounds a hang).
const DEADLINE: Duration = Duration::from_secs(60);

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn num(r: &Report, key: &str) -> u64 {
    r.num(key)
        .unwrap_or_else(|| panic!("probe printed no number for {key}: {r:#?}"))
}

#[test]
fn probe_as_xen_pvh_dom0() {
    if which("qemu-system-x86_64").is_none() {
        return skip_or_fail("qemu-system-x86_64 not found on PATH");
    }
    let xen = artifacts_dir().join("xen");
    if !xen.is_file() {
        return skip_or_fail(&format!(
            "{} missing: run scripts/fetch-artifacts.sh",
            xen.display()
        ));
    }

    // Module contents: deterministic but not trivial (a position hash).
    let module: Vec<u8> = (0..6007u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let modfile =
        TempFile(std::env::temp_dir().join(format!("pvh-probe-xen-{}.bin", std::process::id())));
    std::fs::write(&modfile.0, &module).expect("write the module file");
    let probe = pvh_guests::probe_path();
    let (probe_s, mod_s) = (probe.display().to_string(), modfile.0.display().to_string());
    // QEMU splits -initrd at commas and each module string at its first
    // space: the paths must have neither.
    for p in [&probe_s, &mod_s] {
        assert!(!p.contains([',', ' ']), "unusable path for -initrd: {p}");
    }
    let modules = format!("{probe_s} console=hvc0 foo=bar,{mod_s} modcmd=1");

    let mut cmd = pvh_tests::xen_under_qemu(&xen, "max", &modules, DOM0_MIB as u32);
    let out = run_bounded(&mut cmd, DEADLINE).expect("run qemu");
    assert!(
        !out.timed_out(),
        "Xen run killed after {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.code(),
        Some(ExitCode::Success.qemu_status()),
        "the probe did not exit with success\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let r = Report::parse(&out.stdout).expect("well-formed probe output");
    assert!(r.done(), "no probe.done=1:\n{}", out.stdout);

    assert_eq!(r.get("platform"), Some("xen"));
    assert_eq!(num(&r, "magic"), 0x336e_c578);
    assert_eq!(num(&r, "version"), 0);
    // SIF_PRIVILEGED | SIF_INITDOMAIN.
    assert_eq!(num(&r, "flags"), 0x3);
    assert_eq!(r.get("cmdline"), Some("console=hvc0 foo=bar"));
    assert_eq!(num(&r, "nr_modules"), 1);
    assert_eq!(
        r.get("module.0.cmdline"),
        Some(format!("{mod_s} modcmd=1").as_str())
    );
    assert_eq!(num(&r, "module.0.size"), module.len() as u64);
    assert_eq!(
        num(&r, "module.0.crc32"),
        u64::from(crc32fast::hash(&module))
    );
    assert_eq!(r.get("rsdp.valid"), Some("1"), "{r:#?}");

    // No map in a version-0 start_info: the hypercall's.
    assert_eq!(r.get("memmap.source"), Some("hypercall"));
    let map = r.map("memmap");
    assert!(!map.is_empty());
    assert_eq!(map.len() as u64, num(&r, "memmap.count"));
    let ram = ram_bytes(&map);
    let dom0 = DOM0_MIB << 20;
    assert!(
        ram.abs_diff(dom0) <= SLACK,
        "{ram:#x} bytes of RAM for dom0_mem={DOM0_MIB}M: {map:#x?}"
    );

    // The zero page was built from that map.
    let e820 = r.map("zeropage.e820");
    assert!(!e820.is_empty());
    assert_eq!(e820.len() as u64, num(&r, "zeropage.e820_entries"));
    assert_eq!(ram_bytes(&e820), ram);
    for e in map.iter().filter(|e| e.type_ == 1 && e.size > 0) {
        assert!(e820.contains(e), "RAM range {e:x?} missing from {e820:x?}");
    }
    assert_eq!(num(&r, "zeropage.ramdisk_image"), num(&r, "module.0.paddr"));
    assert_eq!(num(&r, "zeropage.ramdisk_size"), module.len() as u64);
    assert_eq!(num(&r, "zeropage.cmd_line_ptr"), num(&r, "cmdline_paddr"));
    assert_eq!(num(&r, "zeropage.acpi_rsdp_addr"), num(&r, "rsdp_paddr"));
}
