//! `bootinfo::launch` on this machine's KVM: domains of one tree, each the
//! built-in probe guest (or a hand-assembled one) in its own VM at the same
//! time. Each probe's report (prefixed `(dN) `) must show that domain's own
//! command line, memory and modules; expected values come from the test's
//! inputs. A tree with one bad domain runs nothing; the control domain
//! ends the others; the hardware domain's console is not prefixed.

#[path = "../../loader/bootdomains/tests/bootinfo_util/mod.rs"]
mod bootinfo_util;
mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Asm, kvm_available, pvh_elf};

use bootinfo_util::*;
use pvh_bootdomains::{self as bootinfo, DomainBoot, DomainDefaults, LaunchPlan};
use pvh_guests::report::Report;
use pvh_hypervisor::VmEnd;
use pvh_hypervisor::devices::ConsoleOut;
use pvh_hypervisor::launch::{self, LaunchError, LaunchOptions};
use pvh_loader::Purpose;

/// Only hit if the VMM is broken; the probe takes milliseconds.
const WATCHDOG: Duration = Duration::from_secs(120);

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

/// Launches `info` on the KVM device `device` with `timeout`, the console
/// captured: the result and everything the domains printed.
fn launch_captured(
    info: &bootinfo::BootInfo,
    device: &str,
    timeout: Option<Duration>,
) -> (Result<Vec<launch::DomainOutcome>, LaunchError>, String) {
    let captured = Captured::default();
    let opts = LaunchOptions {
        kvm_device: device.into(),
        timeout,
        console: ConsoleOut::new(Box::new(captured.clone())),
    };
    let result = launch::launch(info, &opts);
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (result, out)
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
    let (result, out) = launch_captured(&info, "/dev/kvm", Some(WATCHDOG));
    let outcomes = result.unwrap();

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
fn one_bad_domain_and_nothing_runs() {
    if !kvm_available("one_bad_domain_and_nothing_runs") {
        return;
    }
    // d1 is fine; d2's kernel is not a kernel: the check refuses it before
    // any domain is built, so d1 never prints a line.
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
    let (result, out) = launch_captured(&info, "/dev/kvm", Some(WATCHDOG));
    let e = result.unwrap_err();
    assert!(
        matches!(&e, LaunchError::Domain(d) if d.domid == 2 && d.name == "bad"),
        "{e:?}"
    );
    assert_eq!(
        e.status(),
        66,
        "a bad domain is bad input, not a usage error"
    );
    assert!(
        e.to_string()
            .starts_with("d2 (bad): loading the guest failed"),
        "{e}"
    );
    assert!(out.is_empty(), "a domain ran: {out}");
    // The same check is what --plan runs.
    assert!(LaunchPlan::new(&info, &pvh_hypervisor::boot::domain_builder()).is_err());
}

#[test]
fn a_domain_the_host_cannot_build_runs_nothing_either() {
    if !kvm_available("a_domain_the_host_cannot_build_runs_nothing_either") {
        return;
    }
    // Both domains pass the check; the host cannot build them (no KVM
    // device): one error naming the first domain, and nothing printed.
    let files = Scratch::new();
    files.file("probe.elf", pvh_guests::PROBE);
    let d = |name: &str| {
        Node::new(name)
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 32 << 10])
            .prop("cpus", 1u32)
            .child(
                Node::new("k")
                    .prop("compatible", "multiboot,kernel")
                    .prop("xen,uefi-binary", "probe.elf"),
            )
    };
    let info =
        bootinfo::parse(&chosen(vec![d("a"), d("b")]), sources(&[], Some(&files.0))).unwrap();
    let plan = LaunchPlan::new(&info, &pvh_hypervisor::boot::domain_builder()).unwrap();
    assert_eq!(plan.domains.len(), 2);
    let (result, out) = launch_captured(&info, "/nonexistent/kvm", Some(WATCHDOG));
    let e = result.unwrap_err();
    assert!(matches!(&e, LaunchError::Build { domid: 1, .. }), "{e:?}");
    assert_eq!(e.status(), 69);
    assert!(out.is_empty(), "{out}");
}

/// A PVH ELF that prints `line` and spins forever.
fn spinner(line: &str) -> Vec<u8> {
    let a = Asm::new().print(line);
    let at = a.here();
    pvh_elf(a.jmp_to(at).bytes())
}

#[test]
fn the_control_domain_ends_the_others() {
    if !kvm_available("the_control_domain_ends_the_others") {
        return;
    }
    // d1 spins forever; d2 (CONTROL) is the probe, which exits 0. With no
    // timeout, the launch ends only because d2 ends d1. d3 (HARDWARE)
    // prints a line that must come out without a prefix.
    let spin = spinner("spinning\n");
    let owner = pvh_elf(Asm::new().print("console owner\n").exit(3).bytes());
    let mods = vec![lm(&spin, ""), lm(pvh_guests::PROBE, ""), lm(&owner, "")];
    let dom = |name: &str, i: u32, caps: u32| {
        Node::new(name)
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 32 << 10])
            .prop("capabilities", caps)
            .child(
                Node::new("kernel")
                    .prop("compatible", "multiboot,kernel")
                    .prop("module-index", i),
            )
    };
    let tree = hyperlaunch(vec![dom("spin", 0, 0), dom("ctl", 1, 1), dom("hw", 2, 2)]);
    let info = bootinfo::parse(&tree, sources(&mods, None)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(WATCHDOG).is_err() {
            eprintln!("watchdog: the launch did not end");
            std::process::exit(99);
        }
    });
    let (result, out) = launch_captured(&info, "/dev/kvm", None);
    tx.send(()).unwrap();
    watchdog.join().unwrap();
    let outcomes = result.unwrap();
    assert!(
        matches!(outcomes[0].result, Ok(VmEnd::Destroyed { .. })),
        "{outcomes:?}"
    );
    assert!(outcomes[1].leads);
    assert!(
        matches!(outcomes[1].result, Ok(VmEnd::ExitPort(0))),
        "{outcomes:?}"
    );
    let mut summary = Vec::new();
    assert_eq!(
        launch::summarize(&outcomes, &mut summary),
        0,
        "the leader's status"
    );
    let summary = String::from_utf8(summary).unwrap();
    assert!(
        summary.contains(
            "pvh: d1 (spin): destroyed by the VMM while running: the control domain d2 ended"
        ),
        "{summary}"
    );
    assert!(out.lines().any(|l| l == "(d1) spinning"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("(d2) probe.done=1")),
        "{out}"
    );
    // The hardware domain, if it ran before the leader ended, printed
    // without a prefix; it never printed with one.
    assert!(!out.contains("(d3)"), "{out}");
    if matches!(outcomes[2].result, Ok(VmEnd::ExitPort(3))) {
        assert!(out.lines().any(|l| l == "console owner"), "{out}");
    }
}

#[test]
fn tree_values_override_the_command_line_defaults() {
    if !kvm_available("tree_values_override_the_command_line_defaults") {
        return;
    }
    // Defaults: no ACPI, 2 vCPUs. d1 keeps them; d2 turns ACPI on and says
    // 3 vCPUs; the probes report what they got.
    let mods = vec![lm(pvh_guests::PROBE, "")];
    let dom = |name: &str| {
        Node::new(name)
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 32 << 10])
            .child(
                Node::new("kernel")
                    .prop("compatible", "multiboot,kernel")
                    .prop("module-index", 0u32),
            )
    };
    let tree = hyperlaunch(vec![
        dom("defaults"),
        dom("own").prop("pvh,acpi", 1u32).prop("cpus", 3u32),
    ]);
    let defaults = DomainDefaults::default()
        .boot(DomainBoot::default().acpi(false))
        .vcpus(2);
    let info = bootinfo::parse(&tree, sources(&mods, None).defaults(defaults)).unwrap();
    assert_eq!((info.domains[0].vcpus, info.domains[1].vcpus), (2, 3));
    let (result, out) = launch_captured(&info, "/dev/kvm", Some(WATCHDOG));
    let outcomes = result.unwrap();
    for o in &outcomes {
        assert!(matches!(o.result, Ok(VmEnd::ExitPort(0))), "{o:?}\n{out}");
    }
    let r1 = Report::parse(&lines_of(&out, 1)).unwrap();
    let r2 = Report::parse(&lines_of(&out, 2)).unwrap();
    assert_eq!(r1.num("rsdp_paddr"), Some(0), "d1: no ACPI\n{out}");
    assert_eq!(r2.num("rsdp_paddr"), Some(0xe0000), "d2: ACPI\n{out}");
    assert_eq!(r2.num("acpi.madt.cpus"), Some(3), "{out}");
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
    let (result, out) = launch_captured(&info, "/dev/kvm", Some(WATCHDOG));
    let outcomes = result.unwrap();
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

/// `data` as a gzip stream.
fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One probe domain with three modules of unknown kind (so: kernel,
/// ramdisk, other): the probe, 16 KiB of plain data (start_info module 0,
/// placed first, at the top of RAM), and a gzip stream (module 1, placed
/// below module 0: without headroom, right below it).
fn inflate_tree(gz: &[u8]) -> (Vec<u8>, Vec<bootinfo::LoaderModule>) {
    let plain = vec![0x5a; 16 << 10];
    let mods = vec![
        lm(pvh_guests::PROBE, "probe.inflate"),
        lm(&plain, ""),
        lm(gz, ""),
    ];
    let m = |name: &str, i: u32| {
        Node::new(name)
            .prop("compatible", "multiboot,module")
            .prop("module-index", i)
    };
    let tree = hyperlaunch(vec![
        Node::new("unpacker")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 64 << 10])
            .child(m("kernel", 0))
            .child(m("ramdisk", 1))
            .child(m("packed", 2)),
    ]);
    (tree, mods)
}

#[test]
fn a_module_is_decompressed_in_place_into_its_headroom() {
    if !kvm_available("a_module_is_decompressed_in_place_into_its_headroom") {
        return;
    }
    // 128 KiB that compresses well: the stream is a few KiB, so in-place
    // decompression needs over 100 KiB of room after it. (Small on
    // purpose: every page a guest touches costs milliseconds on this
    // machine's nested KVM.)
    let data: Vec<u8> = (0..128u32 << 10)
        .map(|i| (i % 251) as u8 ^ (i >> 11) as u8)
        .collect();
    let gz = gzip(&data);
    assert!(gz.len() < 16 << 10, "{} bytes", gz.len());
    let (tree, mods) = inflate_tree(&gz);
    let info = bootinfo::parse(&tree, sources(&mods, None)).unwrap();
    let packed = &info.modules[2];
    assert_eq!(packed.kind, bootinfo::ModuleKind::Unknown);
    // pvh's estimate: ISIZE - length + 256 KiB, page-aligned.
    let headroom = ((128u64 << 10) - gz.len() as u64 + (256 << 10)).next_multiple_of(4096);
    assert_eq!(packed.headroom, headroom);

    // The planner reserves it, right after start_info module 1.
    let plan = LaunchPlan::new(&info, &pvh_hypervisor::boot::domain_builder()).unwrap();
    let placements = &plan.domains[0].checked.plan;
    let module = *placements.find(Purpose::Module(1)).unwrap();
    let room = *placements.find(Purpose::Headroom(1)).unwrap();
    assert_eq!(
        (room.start, room.len),
        (module.start + gz.len() as u64, headroom)
    );
    assert!(plan.to_string().contains("module 1 headroom"), "{plan}");
    drop(plan);

    let run = |info: &bootinfo::BootInfo| {
        let (result, out) = launch_captured(info, "/dev/kvm", Some(WATCHDOG));
        let outcomes = result.unwrap();
        assert!(
            matches!(outcomes[0].result, Ok(VmEnd::ExitPort(0))),
            "{outcomes:?}\n{out}"
        );
        let report = Report::parse(&lines_of(&out, 1)).unwrap();
        (report, out)
    };

    let (r, out) = run(&info);
    assert_eq!(r.num("module.1.paddr"), Some(module.start), "{out}");
    // The probe decompressed it where it lies: output at the module's
    // start, the same bytes as `data`, and it used memory past the
    // module's end, all of it inside what the planner reserved.
    assert_eq!(r.get("inflate.1.trailer"), Some("ok"), "{out}");
    assert_eq!(r.num("inflate.1.size"), Some(data.len() as u64), "{out}");
    assert_eq!(
        r.num("inflate.1.crc32"),
        Some(u64::from(crc32fast::hash(&data))),
        "{out}"
    );
    let region = r.get("inflate.1.region").expect("region");
    let (start, end) = region.split_once(',').unwrap();
    let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (start, end) = (parse(start), parse(end));
    assert_eq!(start, module.start);
    assert!(
        end > module.start + module.len,
        "the headroom was used: {region}"
    );
    assert!(
        end <= room.start + room.len,
        "{region} within the reservation {room:?}"
    );
    // Nothing else was there: the other module is as it was.
    assert_eq!(r.get("inflate.others_intact"), Some("1"), "{out}");

    // Control: without the reservation the module lies right below module
    // 0, and the same guest cannot do it.
    let mut bare = info.clone();
    bare.modules[2].headroom = 0;
    let (r, out) = run(&bare);
    assert_eq!(
        r.get("inflate.1.error"),
        Some("the room the module needs holds something else"),
        "{out}"
    );
    assert_eq!(r.get("inflate.others_intact"), Some("1"), "{out}");
}
