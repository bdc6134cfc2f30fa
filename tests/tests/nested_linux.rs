//! Stock Linux booted by `pvh` on a real KVM: the arrangement of
//! `shared/reference/environment.md`. QEMU (TCG, `-cpu EPYC`) runs Debian's
//! kernel as L1; L1 loads Debian's kvm modules, which gives it a real
//! `/dev/kvm` with SVM and nested paging; a static `pvh` then boots Debian's
//! kernel as L2 three ways:
//!
//! 1. `pvh`: the vmlinux through PVH, Linux's own PVH entry translating the
//!    start_info into its zero page (`init_pvh_bootparams`);
//! 2. `stub`: the bzImage through pvh's guest stub (`pvh-stub`), which
//!    translates with `pvh_entry::zeropage::translate` inside the guest;
//! 3. `linux`: the bzImage through the Linux 64-bit boot protocol, the
//!    loader translating with the same function on the host;
//! 4. and 5. `stub-xen`, `linux-xen`: the two bzImage paths again with
//!    `--subarch xen`, which both must honour (`hardware_subarch` = XEN,
//!    `hardware_subarch_data` = the start_info's address).
//!
//! Each L2 init prints a marker, `/proc/cmdline` and the zero page the
//! kernel actually received (`/sys/kernel/boot_params/data`), then
//! `reboot -f`. The test asserts all three markers and that the three zero
//! pages agree on every translated field; where they differ by design the
//! field is named below with the reason and not compared.
//!
//! Then, in the same L1, `pvh launch` boots two Linux domains described by
//! one dom0less device tree (the vmlinux through PVH and the bzImage
//! through the stub, with different memory sizes and command lines), and
//! each must reach its own init marker, with its console lines prefixed by
//! its domain id. Last, a tree whose second domain's kernel is not a kernel
//! runs nothing: `pvh launch` checks every domain before any starts, so the
//! good first domain never prints a line, and the exit status is 66.

use pvh_bootparams::{BootParams, E820Type, ZERO_PAGE_SIZE};
use pvh_tests::nested::{end_line, field, parse_zero_page, section};
use pvh_tests::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const MODES: [(&str, &str); 5] = [
    ("pvh", "--kernel /l2/vmlinux"),
    ("stub", "--kernel /l2/bzImage"),
    ("linux", "--kernel /l2/bzImage --boot-protocol linux"),
    ("stub-xen", "--kernel /l2/bzImage --subarch xen"),
    (
        "linux-xen",
        "--kernel /l2/bzImage --boot-protocol linux --subarch xen",
    ),
];
/// The modes that ask for `hardware_subarch = XEN`.
const XEN_MODES: [&str; 2] = ["stub-xen", "linux-xen"];
const L2_MEMORY: &str = "256M";

/// Two Linux domains in one dom0less tree; file names resolve under
/// `pvh launch --dir /l2`.
const DOMAINS_DTS: &str = r#"/dts-v1/;
/ { chosen {
  #address-cells = <2>; #size-cells = <2>;
  domU1 {
    compatible = "xen,domain";
    #address-cells = <2>; #size-cells = <2>;
    memory = <0x0 0x30000>;
    cpus = <1>;
    module@1 { compatible = "multiboot,kernel", "multiboot,module";
               xen,uefi-binary = "vmlinux";
               bootargs = "console=ttyS0 reboot=k panic=-1 quiet pvhmode=launch-a"; };
    module@2 { compatible = "multiboot,ramdisk", "multiboot,module";
               xen,uefi-binary = "initrd.cpio"; };
  };
  domU2 {
    compatible = "xen,domain";
    #address-cells = <2>; #size-cells = <2>;
    memory = <0x0 0x28000>;
    cpus = <1>;
    module@1 { compatible = "multiboot,kernel", "multiboot,module";
               xen,uefi-binary = "bzImage";
               bootargs = "console=ttyS0 reboot=k panic=-1 quiet pvhmode=launch-b"; };
    module@2 { compatible = "multiboot,ramdisk", "multiboot,module";
               xen,uefi-binary = "initrd.cpio"; };
  };
}; };
"#;
/// The same two domains, but domU2's "kernel" is the initrd: the whole
/// tree is refused before domU1 runs.
const BAD_DTS: &str = r#"/dts-v1/;
/ { chosen {
  domU1 {
    compatible = "xen,domain";
    #address-cells = <2>; #size-cells = <2>;
    memory = <0x0 0x30000>;
    cpus = <1>;
    module@1 { compatible = "multiboot,kernel", "multiboot,module";
               xen,uefi-binary = "vmlinux";
               bootargs = "console=ttyS0 reboot=k panic=-1 quiet pvhmode=launch-bad"; };
  };
  domU2 {
    compatible = "xen,domain";
    memory = <0x0 0x28000>;
    cpus = <1>;
    module@1 { compatible = "multiboot,kernel", "multiboot,module";
               xen,uefi-binary = "initrd.cpio"; };
  };
}; };
"#;
const INITRD_MARK: &str = "l2-initrd";

const L2_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "L2-MARKER $(cat /proc/cmdline)"
echo "L2-ZP $(hexdump -v -e '1/1 "%02x"' /sys/kernel/boot_params/data)"
echo "L2-INITRD $(cat /etc/l2-initrd-mark)"
reboot -f
"#;

/// What L1 runs: `pvh boot` once per mode, then `pvh launch`.
fn l1_script() -> String {
    let mut s = String::new();
    for (name, args) in MODES {
        s.push_str(&format!(
            "echo NESTED-BEGIN {name}\n/pvh boot {args} --initrd /l2/initrd.cpio --memory {L2_MEMORY} \
             --cmdline 'console=ttyS0 reboot=k panic=-1 quiet pvhmode={name}'\necho NESTED-END {name} rc=$?\n"
        ));
    }
    s.push_str("echo NESTED-BEGIN launch\n/pvh launch /l2/domains.dtb --dir /l2\necho NESTED-END launch rc=$?\n");
    s.push_str("echo NESTED-BEGIN refused\n/pvh launch /l2/bad.dtb --dir /l2\necho NESTED-END refused rc=$?\n");
    s
}

/// Compiles `source` with `dtc` into `dir/name.dtb`.
fn compile_dts(dir: &std::path::Path, name: &str, source: &str) -> PathBuf {
    let dts = dir.join(format!("{name}.dts"));
    let dtb = dir.join(format!("{name}.dtb"));
    std::fs::write(&dts, source).unwrap();
    let status = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb)
        .arg(&dts)
        .status()
        .expect("run dtc");
    assert!(status.success(), "dtc failed");
    dtb
}

/// The e820 map as byte ranges per type, merged: the same memory described
/// with different splits, orders or duplicate entries compares equal.
fn e820_sets(bp: &BootParams) -> BTreeMap<u32, Vec<(u64, u64)>> {
    let mut by_type: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for e in bp.e820() {
        let (addr, size, t) = (e.addr, e.size, e.type_);
        by_type.entry(t.0).or_default().push((addr, addr + size));
    }
    for ranges in by_type.values_mut() {
        ranges.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for &(s, e) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ranges = merged;
    }
    by_type
}

#[test]
fn stock_linux_three_ways_on_nested_kvm() {
    if !require(
        have("dtc"),
        "dtc not installed (device-tree-compiler; scripts/setup.sh)",
    ) {
        return;
    }
    let (Some(vmlinux), Some(bzimage)) = (artifact("vmlinux"), artifact("bzImage")) else {
        return;
    };
    let dir = scratch_dir("nested-linux");

    // L2's initrd carries a file whose content proves it is the initrd given.
    let mark = dir.join("mark");
    std::fs::write(&mark, INITRD_MARK).unwrap();
    let l2_initrd = dir.join("l2-initrd.cpio");
    initramfs(&l2_initrd, L2_INIT, &[(mark, "/etc/l2-initrd-mark")]);
    let files: Vec<(PathBuf, &str)> = vec![
        (vmlinux, "/l2/vmlinux"),
        (bzimage, "/l2/bzImage"),
        (l2_initrd, "/l2/initrd.cpio"),
        (compile_dts(&dir, "domains", DOMAINS_DTS), "/l2/domains.dtb"),
        (compile_dts(&dir, "bad", BAD_DTS), "/l2/bad.dtb"),
    ];
    let Some(log) = nested::run_l1(&dir, &l1_script(), &files, Duration::from_secs(900)) else {
        return;
    };

    let mut pages = BTreeMap::new();
    for (mode, _) in MODES {
        let lines = section(&log, mode);
        let cmdline = field(&lines, "L2-MARKER")
            .unwrap_or_else(|| panic!("{mode}: no L2 marker:\n{}", lines.join("\n")));
        assert!(
            cmdline.contains(&format!("pvhmode={mode}")),
            "{mode}: /proc/cmdline is {cmdline:?}"
        );
        // pvh's machine has no PCI: a Linux kernel is told so, in front of
        // the user's arguments (pvh_hypervisor::boot::fit_cmdlines_to_machine).
        assert!(
            cmdline.starts_with("pci=off console=ttyS0 "),
            "{mode}: /proc/cmdline is {cmdline:?}"
        );
        assert_eq!(
            field(&lines, "L2-INITRD"),
            Some(INITRD_MARK),
            "{mode}: initrd content"
        );
        let end = end_line(&log, mode);
        assert!(end.ends_with("rc=0"), "{mode}: pvh exit: {end}");
        pages.insert(
            mode,
            parse_zero_page(field(&lines, "L2-ZP").expect("zero page dump")),
        );
    }

    // Compared on every translated field. Not compared, by design:
    // - cmd_line_ptr / ramdisk_image: addresses each path chooses itself
    //   (checked non-zero; the content is checked through /proc/cmdline and
    //   the initrd's marker file above);
    // - type_of_loader: 0xB0 from Linux's PVH entry, 0xFF from pvh;
    // - acpi_rsdp_addr on the PVH path (see below);
    // - hdr.version and the other setup-header fields: the PVH path has no
    //   kernel header (Linux writes 2.12), the bzImage paths copy the
    //   kernel's own;
    // - e820 entry order and splits: compared as byte sets per type.
    // Two domains from one tree: each reached its own marker, on its own
    // prefixed console, with its own command line, and launch exited 0.
    let launch = section(&log, "launch");
    for (domid, mode) in [(1, "launch-a"), (2, "launch-b")] {
        let prefix = format!("(d{domid}) L2-MARKER");
        let marker = launch.iter().find(|l| l.contains(&prefix));
        let marker =
            marker.unwrap_or_else(|| panic!("no marker from d{domid}:\n{}", launch.join("\n")));
        assert!(
            marker.contains(&format!("pvhmode={mode}")),
            "d{domid} got {marker:?}"
        );
        assert!(
            marker.contains("L2-MARKER pci=off console=ttyS0 "),
            "d{domid} got {marker:?}"
        );
        assert!(
            launch
                .iter()
                .any(|l| l.contains(&format!("(d{domid}) L2-INITRD {INITRD_MARK}"))),
            "d{domid} initrd"
        );
    }
    let end = end_line(&log, "launch");
    assert!(end.ends_with("rc=0"), "pvh launch exit: {end}");

    // One bad domain: refused before anything runs.
    let bad = section(&log, "refused");
    assert!(
        !bad.iter()
            .any(|l| l.contains("(d1)") || l.contains("(d2)") || l.contains("L2-MARKER")),
        "a domain ran:\n{}",
        bad.join("\n")
    );
    assert!(
        bad.iter()
            .any(|l| l.contains("pvh: d2 (domU2): loading the guest failed")),
        "the error names domU2:\n{}",
        bad.join("\n")
    );
    let end = end_line(&log, "refused");
    assert!(end.ends_with("rc=66"), "pvh launch exit: {end}");

    // The two bzImage paths run the same translation and the same boot
    // policy (in the guest stub and in the host loader) on the same kernel
    // header: the pages the kernel got must be identical byte for byte,
    // apart from addresses each path chooses itself (docs/guest.md, "One
    // boot policy"). With --subarch xen too, where the start_info's address
    // (each path places its own) is one of them.
    let by_design: [(std::ops::Range<usize>, &str); 6] = [
        (0x0c0..0x0c4, "ext_ramdisk_image"),
        (0x0c8..0x0cc, "ext_cmd_line_ptr"),
        (
            0x214..0x218,
            "code32_start (the load address each path chose)",
        ),
        (0x218..0x21c, "ramdisk_image"),
        (0x228..0x22c, "cmd_line_ptr"),
        (
            0x240..0x248,
            "hardware_subarch_data (each path's start_info)",
        ),
    ];
    for (a, b) in [("stub", "linux"), ("stub-xen", "linux-xen")] {
        let (pa, pb) = (pages[a].as_page(), pages[b].as_page());
        for i in 0..ZERO_PAGE_SIZE {
            if by_design.iter().any(|(r, _)| r.contains(&i)) {
                continue;
            }
            assert_eq!(
                pa[i], pb[i],
                "zero page byte {i:#x}: {a} {:#04x}, {b} {:#04x}",
                pa[i], pb[i]
            );
        }
    }
    // --subarch xen changes only the subarch and its data.
    let (pc, xen) = (pages["stub"].as_page(), pages["stub-xen"].as_page());
    for i in (0..ZERO_PAGE_SIZE).filter(|i| !(0x23c..0x248).contains(i)) {
        if by_design.iter().any(|(r, _)| r.contains(&i)) {
            continue;
        }
        assert_eq!(pc[i], xen[i], "zero page byte {i:#x}: stub vs stub-xen");
    }
    for mode in XEN_MODES {
        let bp = &pages[mode];
        assert_eq!({ bp.hdr.hardware_subarch }.0, 2, "{mode}: XEN");
        let data = { bp.hdr.hardware_subarch_data };
        assert!(
            data != 0 && data % 8 == 0 && data < 1 << 20,
            "{mode}: hardware_subarch_data {data:#x} is not a start_info address"
        );
    }

    let reference = &pages["pvh"];
    for (mode, bp) in &pages {
        assert_ne!(bp.cmd_line_ptr(), 0, "{mode}: cmd_line_ptr");
        assert_ne!(bp.ramdisk_image(), 0, "{mode}: ramdisk_image");
        assert_eq!(
            bp.ramdisk_size(),
            reference.ramdisk_size(),
            "{mode}: ramdisk size"
        );
        // acpi_rsdp_addr: pvh's translation carries start_info's rsdp_paddr
        // (the same in both bzImage paths, compared byte for byte above);
        // Linux's own PVH entry leaves it 0 and hands the RSDP over through
        // x86_init.acpi.get_root_pointer instead.
        if *mode == "pvh" {
            assert_eq!(
                { bp.acpi_rsdp_addr },
                0,
                "Linux's PVH entry does not fill acpi_rsdp_addr"
            );
        } else {
            assert_ne!(
                { bp.acpi_rsdp_addr },
                0,
                "{mode}: acpi_rsdp_addr (pvh passes ACPI tables)"
            );
        }
        if !XEN_MODES.contains(mode) {
            assert_eq!(
                { bp.hdr.hardware_subarch },
                { reference.hdr.hardware_subarch },
                "{mode}: subarch"
            );
            assert_eq!(
                { bp.hdr.hardware_subarch_data },
                { reference.hdr.hardware_subarch_data },
                "{mode}: subarch data"
            );
        }
        assert_eq!(bp.sentinel, 0, "{mode}: sentinel");
        let sets = e820_sets(bp);
        assert_eq!(
            sets,
            e820_sets(reference),
            "{mode}: e820 differs from Linux's own translation"
        );
        let ram: u64 = sets
            .get(&E820Type::RAM.0)
            .map_or(0, |r| r.iter().map(|(s, e)| e - s).sum());
        assert!(
            ram > 200 << 20 && ram <= 256 << 20,
            "{mode}: {ram:#x} bytes of RAM for {L2_MEMORY}"
        );
    }
}
