//! `bootinfo::launch`: two domains of one dom0less tree, each the built-in
//! probe guest in its own KVM VM at the same time. Each probe's report
//! (prefixed `(dN) `) must show that domain's own command line, memory and
//! modules; expected values come from the test's inputs.

mod bootinfo_util;

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootinfo_util::*;
use pvh_guests::report::Report;
use pvh_hypervisor::VmEnd;
use pvh_hypervisor::bootinfo::launch::{self, LaunchOptions};
use pvh_hypervisor::bootinfo::{self};
use pvh_hypervisor::devices::ConsoleOut;

/// Only hit if the VMM is broken; the probe takes milliseconds.
const WATCHDOG: Duration = Duration::from_secs(120);

fn kvm_available(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: /dev/kvm is required under CI=true");
    }
    eprintln!("{test}: skipped: no /dev/kvm");
    false
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The lines of domain `domid`, prefix removed.
fn lines_of(out: &str, domid: u32) -> String {
    let prefix = format!("(d{domid}) ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn two_domains_run_side_by_side() {
    if !kvm_available("two_domains_run_side_by_side") {
        return;
    }
    let files = Scratch::new();
    files.file("probe.elf", pvh_guests::PROBE);
    let data = b"module bytes for d2";
    files.file("data.bin", data);
    let kernel = |args: &str| {
        Node::new("kernel")
            .prop("compatible", ["multiboot,kernel", "multiboot,module"])
            .prop("xen,uefi-binary", "probe.elf")
            .prop("bootargs", args)
    };
    let tree = chosen(vec![
        Node::new("first")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 64 << 10])
            .prop("cpus", 1u32)
            .child(kernel("first domain")),
        Node::new("second")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 96 << 10])
            .prop("cpus", 2u32)
            .child(kernel("second domain"))
            .child(
                Node::new("data")
                    .prop("compatible", ["multiboot,ramdisk", "multiboot,module"])
                    .prop("xen,uefi-binary", "data.bin"),
            ),
    ]);
    let info = bootinfo::parse(&tree, sources(&[], Some(&files.0))).unwrap();
    let captured = Captured::default();
    let opts = LaunchOptions {
        kvm_device: "/dev/kvm".into(),
        timeout: Some(WATCHDOG),
        console: ConsoleOut::new(Box::new(captured.clone())),
    };
    let outcomes = launch::launch(&info, &opts);
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();

    assert_eq!(outcomes.len(), 2);
    for (o, (domid, name)) in outcomes.iter().zip([(1, "first"), (2, "second")]) {
        assert_eq!((o.domid, o.name.as_str()), (domid, name));
        assert!(
            matches!(o.result, Ok(VmEnd::ExitPort(0))),
            "d{domid}: {:?}\n{out}",
            o.result
        );
        assert_eq!(o.status(), 0);
    }
    // Every console line belongs to one domain.
    for line in out.lines() {
        assert!(
            line.starts_with("(d1) ") || line.starts_with("(d2) "),
            "unprefixed line {line:?}"
        );
    }
    let r1 = Report::parse(&lines_of(&out, 1)).unwrap();
    let r2 = Report::parse(&lines_of(&out, 2)).unwrap();
    assert!(r1.done() && r2.done(), "{out}");
    assert_eq!(r1.get("cmdline"), Some("first domain"));
    assert_eq!(r2.get("cmdline"), Some("second domain"));
    assert_eq!(r1.num("ram_top"), Some(64 << 20));
    assert_eq!(r2.num("ram_top"), Some(96 << 20));
    assert_eq!(r1.num("nr_modules"), Some(0));
    assert_eq!(r2.num("nr_modules"), Some(1));
    assert_eq!(r2.num("module.0.size"), Some(data.len() as u64));

    let mut summary = Vec::new();
    assert_eq!(launch::summarize(&outcomes, &mut summary), 0);
    let summary = String::from_utf8(summary).unwrap();
    assert_eq!(summary.lines().count(), 2, "{summary}");
    assert!(summary.starts_with("pvh: d1 (first): "), "{summary}");
}

#[test]
fn a_failing_domain_makes_the_status_non_zero() {
    if !kvm_available("a_failing_domain_makes_the_status_non_zero") {
        return;
    }
    // d1 is fine; d2's kernel is not a kernel: the loader refuses it
    // (status 66, bad input) while d1 still runs to its end.
    let mods = vec![lm(pvh_guests::PROBE, ""), lm(b"not a kernel at all", "")];
    let k = |i: u32| {
        Node::new("kernel")
            .prop("compatible", "multiboot,kernel")
            .prop("module-index", i)
    };
    let tree = hyperlaunch(vec![
        Node::new("good")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 32 << 10])
            .child(k(0)),
        Node::new("bad")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 32 << 10])
            .child(k(1)),
    ]);
    let info = bootinfo::parse(&tree, sources(&mods, None)).unwrap();
    let opts = LaunchOptions {
        kvm_device: "/dev/kvm".into(),
        timeout: Some(WATCHDOG),
        console: ConsoleOut::new(Box::new(io::sink())),
    };
    let outcomes = launch::launch(&info, &opts);
    assert!(matches!(outcomes[0].result, Ok(VmEnd::ExitPort(0))));
    assert!(outcomes[1].result.is_err());
    assert_eq!(outcomes[1].status(), 66);
    let mut summary = Vec::new();
    assert_eq!(launch::summarize(&outcomes, &mut summary), 66);
    let summary = String::from_utf8(summary).unwrap();
    assert!(
        summary.contains("pvh: d2 (bad): loading the guest failed"),
        "{summary}"
    );
}

#[test]
fn the_dom0less_example_fixture_launches() {
    if !kvm_available("the_dom0less_example_fixture_launches") {
        return;
    }
    let Some(dtb) = dtc("dom0less.dts") else {
        return;
    };
    // Both kernels are the probe; the ramdisk is plain bytes.
    let files = Scratch::new();
    files.file("vmlinux", pvh_guests::PROBE);
    files.file("probe.elf", pvh_guests::PROBE);
    let initrd = b"initrd for domU1";
    files.file("initrd.img", initrd);
    let info = bootinfo::parse(&dtb, sources(&[], Some(&files.0))).unwrap();
    let captured = Captured::default();
    let opts = LaunchOptions {
        kvm_device: "/dev/kvm".into(),
        timeout: Some(WATCHDOG),
        console: ConsoleOut::new(Box::new(captured.clone())),
    };
    let outcomes = launch::launch(&info, &opts);
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for o in &outcomes {
        assert!(matches!(o.result, Ok(VmEnd::ExitPort(0))), "{o:?}\n{out}");
    }
    let r1 = Report::parse(&lines_of(&out, 1)).unwrap();
    let r2 = Report::parse(&lines_of(&out, 2)).unwrap();
    assert_eq!(r1.get("cmdline"), Some("console=ttyS0"));
    assert_eq!(r1.num("ram_top"), Some(256 << 20));
    assert_eq!(r1.num("nr_modules"), Some(1));
    assert_eq!(r1.num("module.0.size"), Some(initrd.len() as u64));
    assert_eq!(r2.get("cmdline"), Some("hello"));
    assert_eq!(r2.num("ram_top"), Some(128 << 20));
    assert_eq!(r2.num("nr_modules"), Some(0));
}
