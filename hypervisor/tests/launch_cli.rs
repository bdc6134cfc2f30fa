//! `pvh launch` and the options it shares with `pvh boot`, through the
//! binary: exit statuses (a bad tree is bad input, 66, never a usage
//! error), `--plan` showing what the tree means and escaping what the tree
//! says, the one `--module` syntax naming any path (`,` and `@` doubled, not
//! UTF-8), and `--plan` agreeing with `launch` on every tree.

#[path = "../../loader/bootdomains/tests/bootinfo_util/mod.rs"]
mod bootinfo_util;
mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use bootinfo_util::*;
use common::{Asm, kvm_available, pvh_elf};
use pvh_hypervisor::status;

/// Generous bound for any single `pvh` run; only hit if the VMM is broken.
const WATCHDOG: Duration = Duration::from_secs(120);

fn pvh<S: AsRef<OsStr>>(args: &[S]) -> common::PvhRun {
    common::run_pvh(args, WATCHDOG)
}

/// `pvh launch TREE --dir DIR --plan` with `extra` arguments.
fn plan(dtb: &Path, dir: &Path, extra: &[&str]) -> common::PvhRun {
    let mut args = vec![
        os("launch".as_ref()),
        os(dtb),
        "--dir".into(),
        os(dir),
        "--plan".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    pvh(&args)
}

fn os(p: &Path) -> OsString {
    p.as_os_str().to_owned()
}

/// A probe domain whose kernel is `file` under `--dir`.
fn probe_domain(name: &str, file: &str) -> Node {
    Node::new(name)
        .prop("compatible", "xen,domain")
        .prop("memory", [0, 32 << 10])
        .prop("cpus", 1u32)
        .child(
            Node::new("kernel")
                .prop("compatible", "multiboot,kernel")
                .prop("xen,uefi-binary", file)
                .prop("bootargs", "probe"),
        )
}

#[test]
fn a_bad_tree_is_bad_input_for_plan_and_launch_alike() {
    let dir = Scratch::new();
    dir.file("probe.elf", pvh_guests::PROBE);
    dir.file("junk", b"not a kernel");
    // Each tree: what is wrong, and the message naming it.
    let cases = [
        (
            chosen(vec![
                probe_domain("d", "probe.elf")
                    .without("cpus")
                    .prop("cpus", 33u32),
            ]),
            "/chosen/d: property `cpus` = 0x21 is invalid",
        ),
        (
            chosen(vec![
                probe_domain("good", "probe.elf"),
                probe_domain("bad", "junk"),
            ]),
            "d2 (bad): loading the guest failed",
        ),
        (
            chosen(vec![
                probe_domain("big", "probe.elf")
                    .without("memory")
                    .prop("memory", [0, 0x1001]),
            ]),
            "d1 (big): loading the guest failed",
        ),
    ];
    for (tree, message) in cases {
        let dtb = dir.file("t.dtb", &tree);
        for plan in [true, false] {
            let mut args = vec![os("launch".as_ref()), os(&dtb), "--dir".into(), os(&dir.0)];
            if plan {
                args.push("--plan".into());
            }
            let r = pvh(&args);
            assert_eq!(
                r.status,
                i32::from(status::BAD_INPUT),
                "plan {plan}: {}",
                r.stderr
            );
            assert!(r.stderr.contains(message), "plan {plan}: {}", r.stderr);
            assert!(
                r.stdout.is_empty(),
                "nothing ran or was planned: {}",
                r.out()
            );
        }
    }
    // --cpus over the limit is a usage error (the option), 33 in the tree
    // is bad input (the tree): the same limit.
    let dtb = dir.file("ok.dtb", &chosen(vec![probe_domain("d", "probe.elf")]));
    let r = pvh(&[
        os("launch".as_ref()),
        os(&dtb),
        "--cpus".into(),
        "33".into(),
    ]);
    assert_eq!(r.status, i32::from(status::USAGE), "{}", r.stderr);
    let r = pvh(&["boot", "--cpus", "33"]);
    assert_eq!(r.status, i32::from(status::USAGE), "{}", r.stderr);
}

#[test]
fn plan_shows_what_every_property_became() {
    let dir = Scratch::new();
    dir.file("probe.elf", pvh_guests::PROBE);
    // A gzip stream whose trailer says 1 MiB: headroom 1 MiB - 32 + 256 KiB.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&[0; 14]);
    gz.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x10, 0]);
    dir.file("initrd.gz", &gz);
    let tree = hyperlaunch(vec![
        Node::new("ctl")
            .prop("compatible", "xen,domain")
            .prop("mode", 4u32)
            .prop("capabilities", 3u32)
            .prop("memory", [0, 0x8000])
            .prop("mem-min", [0, 0x4000])
            .prop("mem-max", [0, 0x10000])
            .prop("pvh,acpi", 0u32)
            .child(
                Node::new("kernel")
                    .prop("compatible", "multiboot,kernel")
                    .prop("xen,uefi-binary", "probe.elf")
                    .prop("bootargs", "console=ttyS0"),
            )
            .child(
                Node::new("ramdisk")
                    .prop("compatible", "multiboot,ramdisk")
                    .prop("xen,uefi-binary", "initrd.gz"),
            ),
    ]);
    let dtb = dir.file("t.dtb", &tree);
    let r = plan(&dtb, &dir.0, &["--subarch", "xen", "--cpus", "3"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.out();
    for want in [
        "d1 ctl: /chosen/hypervisor/ctl, PVH 64-bit, 3 vCPU(s), memory 32 MiB",
        "mem-min 16 MiB, mem-max 64 MiB; capabilities 0x3 CONTROL",
        "HARDWARE (owns the console",
        // --subarch and --cpus from the command line, ACPI off from the
        // tree.
        "boot protocol pvh, subarch xen, ACPI off",
        "ramdisk /chosen/hypervisor/ctl/ramdisk: file ",
        "Gzip, headroom 0x140000 (1.2 MiB)",
        "module 0 headroom",
        "cmdline \"console=ttyS0\"",
        "boot loader: pvh ",
        "host: memory limit",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The memory the domain gets when the host cannot give it all: lowered
    // toward mem-min.
    let r = plan(&dtb, &dir.0, &["--host-memory", "20M"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.out()
            .contains("memory 20 MiB (lowered from 32 MiB to fit the host limit)"),
        "{}",
        r.out()
    );
    let r = plan(&dtb, &dir.0, &["--host-memory", "8M"]);
    assert_eq!(r.status, i32::from(status::BAD_INPUT), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`mem-min` = 0x1000000 bytes is over the host limit"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_hostile_tree_cannot_write_to_the_terminal() {
    let dir = Scratch::new();
    dir.file("probe.elf", pvh_guests::PROBE);
    // A node name carrying an OSC sequence, a bell, a carriage return and
    // a newline followed by a fake `pvh:` line; a bootargs with an erase.
    // (vm-fdt refuses such names: they are patched into the blob.)
    let evil_name = "d\x1b]0;owned\x07\rpvh: fake\n";
    let placeholder = "d".to_owned() + &"X".repeat(evil_name.len() - 1);
    let evil = |cpus: u32| {
        let mut tree = chosen(vec![
            probe_domain(&placeholder, "probe.elf")
                .without("cpus")
                .prop("cpus", cpus),
        ]);
        let at = tree
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_bytes())
            .unwrap();
        tree[at..at + evil_name.len()].copy_from_slice(evil_name.as_bytes());
        let args = tree.windows(6).position(|w| w == b"probe\0").unwrap();
        tree[args..args + 5].copy_from_slice(b"\x1b[2J\n");
        tree
    };
    let plan = |tree: &[u8]| plan(&dir.file("evil.dtb", tree), &dir.0, &[]);
    let clean = |bytes: &[u8]| !bytes.iter().any(|&b| b < 0x20 && b != b'\n' || b == 0x7f);
    let r = plan(&evil(1));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(clean(&r.stdout), "{:?}", r.out());
    assert!(
        !r.out().lines().any(|l| l.starts_with("pvh: fake")),
        "{}",
        r.out()
    );
    assert!(
        r.out().contains("d\\x1b]0;owned\\x07\\x0dpvh: fake\\x0a"),
        "{}",
        r.out()
    );
    assert!(r.out().contains("cmdline \"\\x1b[2J\\x0a\""), "{}", r.out());
    // An error about that node: one line, escaped.
    let r = plan(&evil(0));
    assert_eq!(r.status, i32::from(status::BAD_INPUT), "{}", r.stderr);
    assert!(clean(r.stderr.as_bytes()), "{:?}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(
        r.stderr
            .starts_with("pvh: /chosen/d\\x1b]0;owned\\x07\\x0dpvh: fake\\x0a: property `cpus`"),
        "{:?}",
        r.stderr
    );
}

#[test]
fn any_module_path_can_be_named() {
    if !kvm_available("any_module_path_can_be_named") {
        return;
    }
    let dir = Scratch::new();
    // A file name with a comma and an at sign, and one that is not UTF-8.
    let odd = dir.file("a,b@c.bin", b"odd name");
    let raw = dir.0.join(OsStr::from_bytes(b"mod\xff\xfe.bin"));
    std::fs::write(&raw, b"not UTF-8").unwrap();
    let doubled = |p: &Path| {
        let mut v = Vec::new();
        for &b in p.as_os_str().as_bytes() {
            v.push(b);
            if b == b',' || b == b'@' {
                v.push(b);
            }
        }
        v
    };
    let mut m1 = doubled(&odd);
    m1.extend_from_slice(b",first,module");
    let mut m2 = doubled(&raw);
    m2.extend_from_slice(b",second");
    let r = pvh(&[
        OsString::from("boot"),
        "--module".into(),
        OsStr::from_bytes(&m1).to_owned(),
        "--module".into(),
        OsStr::from_bytes(&m2).to_owned(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.out();
    let has = |out: &str, want: &str| out.lines().any(|l| l.trim_end() == want);
    for want in [
        "module.0.size=0x8",
        "module.0.cmdline=first,module",
        "module.1.size=0x9",
        "module.1.cmdline=second",
    ] {
        assert!(has(&out, want), "missing {want:?}:\n{out}");
    }
    // The same syntax in launch, with `@ADDR` found by a tree's `reg`.
    let mut m = doubled(&raw);
    m.extend_from_slice(b"@0x4000000,from the loader");
    let kernel = dir.file("probe.elf", pvh_guests::PROBE);
    let tree = chosen(vec![
        Node::new("d")
            .prop("compatible", "xen,domain")
            .prop("#address-cells", 1u32)
            .prop("#size-cells", 1u32)
            .prop("memory", [0, 32 << 10])
            .prop("cpus", 1u32)
            .child(
                Node::new("kernel")
                    .prop("compatible", "multiboot,kernel")
                    .prop("module-index", 0u32),
            )
            .child(
                Node::new("ramdisk")
                    .prop("compatible", "multiboot,ramdisk")
                    .prop("reg", [0x400_0000u32, 0x1000]),
            ),
    ]);
    let dtb = dir.file("reg.dtb", &tree);
    let r = pvh(&[
        OsString::from("launch"),
        os(&dtb),
        "--module".into(),
        os(&kernel),
        "--module".into(),
        OsStr::from_bytes(&m).to_owned(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.out();
    assert!(has(&out, "(d1) module.0.size=0x9"), "{out}");
    assert!(has(&out, "(d1) module.0.cmdline=from the loader"), "{out}");
    // `@ADDR` means nothing to pvh boot: a usage error, before anything
    // is read.
    let r = pvh(&["boot", "--module", "/nonexistent@0x1000"]);
    assert_eq!(r.status, i32::from(status::USAGE), "{}", r.stderr);
    assert!(r.stderr.contains("`@ADDR`"), "{}", r.stderr);
}

/// Once every domain is built, `pvh launch` releases the tree's and the
/// modules' mappings: a domain's 48 MiB kernel file, mapped to load it,
/// would otherwise stay in pvh's resident set (as `RssFile`, page-cache
/// pages) while the domains run.
#[test]
fn a_domains_files_are_not_kept_mapped_while_it_runs() {
    use std::process::Command;
    if !kvm_available("a_domains_files_are_not_kept_mapped_while_it_runs") {
        return;
    }
    let code = Asm::new().print("ready\n");
    let top = code.here();
    let mut code = code.jmp_to(top).bytes().to_vec();
    code.resize(code.len() + (48 << 20), 0x5a);
    let dir = Scratch::new();
    dir.file("big.elf", &pvh_elf(&code));
    let dtb = dir.file(
        "big.dtb",
        &chosen(vec![
            probe_domain("big", "big.elf")
                .without("memory")
                .prop("memory", [0, 128 << 10]),
        ]),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pvh"));
    cmd.arg("launch").arg(&dtb).arg("--dir").arg(&dir.0);
    let (line, status) = common::first_line_then_kill(&mut cmd, |pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
    });
    assert!(
        line.ends_with("ready\n"),
        "the domain did not start: {line:?}"
    );
    let status = status.expect("pvh's /proc status");
    let file_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("RssFile in /proc/PID/status");
    // pvh's own binary and libraries are a few MiB of it.
    assert!(
        file_kib < 24 << 10,
        "{file_kib} KiB of file pages resident while the domain runs"
    );
}
