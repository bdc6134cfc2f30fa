//! `pvh` booting the built-in probe guest (`pvh_guests::PROBE`): the report
//! it prints must match what was given on the command line. Expected values
//! come from the test's own inputs (CRC32 by crc32fast, sizes from the
//! files), never from the VMM or the loader.

mod common;

use pvh_loader::Kernel;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kvm_available;
use pvh_guests::report::Report;

/// Only hit if the VMM is broken; the probe takes milliseconds.
const WATCHDOG: Duration = Duration::from_secs(120);

fn pvh(args: &[&str]) -> (i32, String, String) {
    let r = common::run_pvh(args, WATCHDOG);
    (r.status, r.out(), r.stderr)
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvh-hypervisor-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The ISA window (0xa0000..0x100000) is never RAM in the memory map.
const ISA_WINDOW_LEN: u64 = 0x10_0000 - 0xa_0000;

#[test]
fn no_arguments_boots_the_probe() {
    if !kvm_available("no_arguments_boots_the_probe") {
        return;
    }
    for args in [&[][..], &["boot"][..]] {
        let (status, out, err) = pvh(args);
        assert_eq!(status, 0, "pvh {args:?}: {err}");
        let r = Report::parse(&out).unwrap();
        assert!(r.done(), "probe did not finish: {out}");
        assert_eq!(r.num("magic"), Some(0x336e_c578));
        assert_eq!(r.num("nr_modules"), Some(0));
        assert_eq!(r.get("cmdline"), Some(""));
        // Default --memory is 512M.
        assert_eq!(r.num("ram_top"), Some(512 << 20));
        assert_eq!(r.num("ram_bytes"), Some((512 << 20) - ISA_WINDOW_LEN));
    }
}

#[test]
fn probe_report_matches_cmdline_modules_and_memory() {
    if !kvm_available("probe_report_matches_cmdline_modules_and_memory") {
        return;
    }
    let initrd: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let m1 = b"module one contents".to_vec();
    let m2: Vec<u8> = (0..4097u32).map(|i| (i ^ (i >> 3)) as u8).collect();
    let initrd_p = file("initrd.img", &initrd);
    let m1_p = file("m1.bin", &m1);
    let m2_p = file("m2.bin", &m2);
    let m1_arg = format!("{},name=one,x=1", m1_p.display());
    let cmdline = "console=ttyS0 probe.test=\"quoted words\" last";
    let (status, out, err) = pvh(&[
        "boot",
        "--cmdline",
        cmdline,
        "--initrd",
        initrd_p.to_str().unwrap(),
        "--module",
        &m1_arg,
        "--module",
        m2_p.to_str().unwrap(),
        "--memory",
        "96M",
    ]);
    assert_eq!(status, 0, "{err}");
    let r = Report::parse(&out).unwrap();
    assert!(r.done(), "{out}");
    assert_eq!(r.get("cmdline"), Some(cmdline));
    assert_eq!(r.num("nr_modules"), Some(3));
    let expect = [(&initrd, None), (&m1, Some("name=one,x=1")), (&m2, None)];
    for (i, (bytes, cmd)) in expect.iter().enumerate() {
        assert_eq!(
            r.num(&format!("module.{i}.size")),
            Some(bytes.len() as u64),
            "module {i}"
        );
        assert_eq!(
            r.num(&format!("module.{i}.crc32")),
            Some(u64::from(crc32fast::hash(bytes))),
            "module {i}"
        );
        assert_eq!(r.get(&format!("module.{i}.cmdline")), *cmd, "module {i}");
    }
    assert_eq!(r.num("ram_top"), Some(96 << 20));
    assert_eq!(r.num("ram_bytes"), Some((96 << 20) - ISA_WINDOW_LEN));
    // The initrd is module 0, which the zero page also names.
    assert_eq!(r.num("zeropage.ramdisk_size"), Some(initrd.len() as u64));
}

#[test]
fn probe_sees_ram_above_4g() {
    if !kvm_available("probe_sees_ram_above_4g") {
        return;
    }
    let (status, out, err) = pvh(&["boot", "--memory", "4G"]);
    assert_eq!(status, 0, "{err}");
    let r = Report::parse(&out).unwrap();
    assert!(r.done(), "{out}");
    // 3 GiB below the MMIO hole, the remaining 1 GiB from 4 GiB.
    assert_eq!(r.num("ram_top"), Some(0x1_4000_0000));
    assert_eq!(r.num("ram_bytes"), Some((4 << 30) - ISA_WINDOW_LEN));
}

fn options(vcpus: u8) -> pvh_hypervisor::boot::BootOptions {
    pvh_hypervisor::boot::BootOptions {
        kvm_device: "/dev/kvm".into(),
        memory: 64 << 20,
        timeout: Some(WATCHDOG),
        console: pvh_hypervisor::devices::ConsoleOut::new(Box::new(std::io::sink())),
        vcpus,
    }
}

#[test]
fn library_boot_with_parked_application_processors() {
    if !kvm_available("library_boot_with_parked_application_processors") {
        return;
    }
    let config = pvh_loader::BootConfig::new(Kernel::pvh_elf(pvh_guests::PROBE)).cmdline(b"smp");
    let (report, _vm) = pvh_hypervisor::boot::boot(&config, &options(2)).unwrap();
    assert!(
        matches!(report.end, pvh_hypervisor::VmEnd::ExitPort(0)),
        "{:?}",
        report.end
    );
    assert_eq!(report.by, Some(0));
    assert_eq!(
        report.stats.len(),
        2,
        "the parked AP's thread came back too"
    );
    // Zero vCPUs is refused by the check before anything is built.
    let err = pvh_hypervisor::boot::boot(&config, &options(0)).unwrap_err();
    assert!(
        matches!(
            err,
            pvh_hypervisor::boot::BootError::Build(pvh_bootdomains::build::BuildError::Vcpus(0))
        ),
        "{err:?}"
    );
}
