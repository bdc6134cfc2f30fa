//! Stock Linux on two VMMs pvh did not write, through pvh's stub: inside
//! the nested L1 of `nested_linux.rs` (QEMU TCG, Debian's kvm-amd, a real
//! `/dev/kvm`), Firecracker and Cloud Hypervisor from the peers directory
//! each boot Debian's kernel
//!
//! 1. as the vmlinux, through their own PVH support (Linux's PVH entry);
//! 2. as the bzImage wrapped by `pvh wrap`, with the initrd and command
//!    line the VMM passes: pvh's stub translates the start_info, and its
//!    summary line shows what it used (Firecracker passes `rsdp_paddr = 0`:
//!    the stub finds the RSDP by scan and hands it to Linux);
//! 3. as the bzImage wrapped with an embedded initrd and command line: on
//!    Cloud Hypervisor, given neither, the stub uses both; Firecracker
//!    always passes a command line (at least `pci=off`), so there only the
//!    embedded initrd is used.
//!
//! Every L2 init prints a marker with `/proc/cmdline`, the contents of a
//! file that names its initrd, and its zero page, then ends its VMM:
//! `reboot -f` with `reboot=k` (Firecracker ends on the reset), `poweroff
//! -f` for Cloud Hypervisor (which restarts on a reset and ends on an ACPI
//! power-off). One L1 boot runs all six, each bounded by `timeout`.

use pvh_bootparams::{BootParams, E820Type};
use pvh_tests::nested::{end_line, field, parse_zero_page, peer_files, section, static_pvh};
use pvh_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const INITRD_MARK: &str = "l2-initrd";
const EMBEDDED_MARK: &str = "l2-embedded-initrd";
const BASE_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// Each L2 run's bound in L1 (a boot takes well under a minute there).
const L2_LIMIT_SECS: u32 = 300;

const L2_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "L2-MARKER $(cat /proc/cmdline)"
echo "L2-INITRD $(cat /etc/l2-initrd-mark)"
echo "L2-ZP $(hexdump -v -e '1/1 "%02x"' /sys/kernel/boot_params/data)"
if grep -q l2exit=poweroff /proc/cmdline; then poweroff -f; else reboot -f; fi
"#;

/// One L2 boot: its name (also `pvhmode=` on its command line), what L1
/// runs, and what it must show.
struct Mode {
    name: &'static str,
    command: String,
    /// The initrd it must see.
    initrd_mark: &'static str,
    /// Substrings of the stub's summary line (none: no stub).
    stub: &'static [&'static str],
}

fn cmdline(name: &str, poweroff: bool) -> String {
    let exit = if poweroff { " l2exit=poweroff" } else { "" };
    format!("{BASE_CMDLINE} pvhmode={name}{exit}")
}

/// A Firecracker config (paths in L1).
fn firecracker_config(dir: &Path, name: &str, kernel: &str, initrd: bool) -> PathBuf {
    let mut boot = serde_json::json!({
        "kernel_image_path": kernel,
        "boot_args": cmdline(name, false),
    });
    if initrd {
        boot["initrd_path"] = "/l2/initrd.cpio".into();
    }
    let config = serde_json::json!({
        "boot-source": boot,
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": 256 },
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn modes() -> Vec<Mode> {
    let fc = |name: &str| {
        format!("/peers/firecracker --no-api --no-seccomp --config-file /l2/{name}.json")
    };
    let ch = |kernel: &str, rest: &str| {
        format!(
            "/peers/cloud-hypervisor --kernel {kernel} {rest} --serial tty --console off \
             --memory size=256M --cpus boot=1"
        )
    };
    vec![
        Mode {
            name: "fc-vmlinux",
            command: fc("fc-vmlinux"),
            initrd_mark: INITRD_MARK,
            stub: &[],
        },
        Mode {
            name: "fc-wrapped",
            command: fc("fc-wrapped"),
            initrd_mark: INITRD_MARK,
            stub: &["cmdline from start_info", "rsdp 0xe0000 from scan"],
        },
        Mode {
            name: "fc-embedded",
            command: fc("fc-embedded"),
            initrd_mark: EMBEDDED_MARK,
            stub: &["cmdline from start_info", "rsdp 0xe0000 from scan"],
        },
        Mode {
            name: "ch-vmlinux",
            command: ch(
                "/l2/vmlinux",
                &format!(
                    "--initramfs /l2/initrd.cpio --cmdline '{}'",
                    cmdline("ch-vmlinux", true)
                ),
            ),
            initrd_mark: INITRD_MARK,
            stub: &[],
        },
        Mode {
            name: "ch-wrapped",
            command: ch(
                "/l2/wrapped.elf",
                &format!(
                    "--initramfs /l2/initrd.cpio --cmdline '{}'",
                    cmdline("ch-wrapped", true)
                ),
            ),
            initrd_mark: INITRD_MARK,
            stub: &["cmdline from start_info", "rsdp 0xa0000 from start_info"],
        },
        Mode {
            name: "ch-embedded",
            command: ch("/l2/wrapped-embedded.elf", ""),
            initrd_mark: EMBEDDED_MARK,
            stub: &["cmdline from payload", "rsdp 0xa0000 from start_info"],
        },
    ]
}

fn l1_script(modes: &[Mode]) -> String {
    let mut s = String::from("mkdir -p /run /var/run\n");
    for m in modes {
        s.push_str(&format!(
            "echo NESTED-BEGIN {name}\ntimeout -s KILL {L2_LIMIT_SECS} {cmd}\necho NESTED-END {name} rc=$?\n",
            name = m.name,
            cmd = m.command
        ));
    }
    s
}

/// `pvh wrap` on the host (the static pvh runs there too).
fn wrap(pvh: &Path, bzimage: &Path, out: &Path, embed: Option<(&Path, &str)>) {
    let mut cmd = Command::new(pvh);
    cmd.arg("wrap").arg(bzimage).arg("-o").arg(out);
    if let Some((initrd, cmdline)) = embed {
        cmd.arg("--initrd").arg(initrd).args(["--cmdline", cmdline]);
    }
    let status = cmd.status().expect("run pvh wrap");
    assert!(status.success(), "pvh wrap failed for {}", out.display());
}

fn ram_bytes(bp: &BootParams) -> u64 {
    bp.e820()
        .iter()
        .filter(|e| { e.type_ } == E820Type::RAM)
        .map(|e| e.size)
        .sum()
}

#[test]
fn linux_on_firecracker_and_cloud_hypervisor_through_the_stub() {
    let (Some(vmlinux), Some(bzimage)) = (artifact("vmlinux"), artifact("bzImage")) else {
        return;
    };
    let Some(peers) = peer_files() else {
        return;
    };
    let dir = scratch_dir("nested-peers");
    let pvh = static_pvh();

    let mark = dir.join("mark");
    std::fs::write(&mark, INITRD_MARK).unwrap();
    let initrd = dir.join("l2-initrd.cpio");
    initramfs(&initrd, L2_INIT, &[(mark, "/etc/l2-initrd-mark")]);
    let embedded_mark = dir.join("embedded-mark");
    std::fs::write(&embedded_mark, EMBEDDED_MARK).unwrap();
    let embedded_initrd = dir.join("l2-embedded.cpio");
    initramfs(
        &embedded_initrd,
        L2_INIT,
        &[(embedded_mark, "/etc/l2-initrd-mark")],
    );
    let wrapped = dir.join("wrapped.elf");
    wrap(&pvh, &bzimage, &wrapped, None);
    let wrapped_embedded = dir.join("wrapped-embedded.elf");
    wrap(
        &pvh,
        &bzimage,
        &wrapped_embedded,
        Some((&embedded_initrd, &cmdline("ch-embedded", true))),
    );

    let modes = modes();
    let mut files: Vec<(PathBuf, &str)> = vec![
        (vmlinux, "/l2/vmlinux"),
        (wrapped, "/l2/wrapped.elf"),
        (wrapped_embedded, "/l2/wrapped-embedded.elf"),
        (initrd, "/l2/initrd.cpio"),
        (
            firecracker_config(&dir, "fc-vmlinux", "/l2/vmlinux", true),
            "/l2/fc-vmlinux.json",
        ),
        (
            firecracker_config(&dir, "fc-wrapped", "/l2/wrapped.elf", true),
            "/l2/fc-wrapped.json",
        ),
        (
            firecracker_config(&dir, "fc-embedded", "/l2/wrapped-embedded.elf", false),
            "/l2/fc-embedded.json",
        ),
    ];
    files.extend(peers);
    let Some(log) = nested::run_l1(&dir, &l1_script(&modes), &files, Duration::from_secs(1500))
    else {
        return;
    };

    let mut pages = std::collections::BTreeMap::new();
    for m in &modes {
        let lines = section(&log, m.name);
        let context = || format!("{}:\n{}", m.name, lines.join("\n"));
        let marker =
            field(&lines, "L2-MARKER").unwrap_or_else(|| panic!("no L2 marker from {}", context()));
        assert!(
            marker.contains(&format!("pvhmode={}", m.name)),
            "{}: /proc/cmdline is {marker:?}",
            m.name
        );
        assert_eq!(
            field(&lines, "L2-INITRD"),
            Some(m.initrd_mark),
            "{}: initrd",
            m.name
        );
        let stub_line = lines
            .iter()
            .find(|l| l.contains("stub: kernel from payload"));
        if m.stub.is_empty() {
            assert!(stub_line.is_none(), "{}: a stub ran", m.name);
        } else {
            let line = stub_line.unwrap_or_else(|| panic!("no stub line from {}", context()));
            for want in m.stub {
                assert!(line.contains(want), "{}: {line:?} lacks {want:?}", m.name);
            }
        }
        let end = end_line(&log, m.name);
        assert!(end.ends_with("rc=0"), "{}: VMM exit: {end}", m.name);
        let page = parse_zero_page(field(&lines, "L2-ZP").expect("zero page dump"));
        pages.insert(m.name, page);
    }

    // The RSDP: Linux's own PVH entry leaves acpi_rsdp_addr 0 (it hands
    // the start_info's over another way); the stub passes what it found:
    // Firecracker's by scan, Cloud Hypervisor's from rsdp_paddr.
    for (mode, rsdp) in [
        ("fc-vmlinux", 0),
        ("fc-wrapped", 0xe_0000),
        ("fc-embedded", 0xe_0000),
        ("ch-vmlinux", 0),
        ("ch-wrapped", 0xa_0000),
        ("ch-embedded", 0xa_0000),
    ] {
        assert_eq!(
            { pages[mode].acpi_rsdp_addr },
            rsdp,
            "{mode}: acpi_rsdp_addr"
        );
    }
    // The same RAM through Linux's translation and the stub's.
    for (native, wrapped) in [("fc-vmlinux", "fc-wrapped"), ("ch-vmlinux", "ch-wrapped")] {
        let ram = ram_bytes(&pages[native]);
        assert!(
            ram > 200 << 20 && ram <= 256 << 20,
            "{native}: {ram:#x} bytes of RAM"
        );
        assert_eq!(
            ram_bytes(&pages[wrapped]),
            ram,
            "{wrapped} vs {native}: RAM"
        );
    }
}
