//! Boot-domain device trees (dom0less and hyperlaunch) parsed into the
//! expected `BootInfo`, compared whole; expected values written by hand.

mod bootinfo_util;

use std::path::Path;

use bootinfo_util::*;
use pvh_bootdomains::host::LOADER_NAME;
use pvh_bootdomains::{
    self as bootinfo, BootDomain, BootInfo, BootModule, Capabilities, CliModule, DomainBoot,
    DomainMode, ModuleKind, ModuleOrigin, SingleDomain,
};
use pvh_bootparams::Compression;

const VMLINUX: &[u8] = b"\x7fELF vmlinux bytes";
const PROBE: &[u8] = b"\x7fELF probe";
/// A gzip stream whose trailer says 64 KiB: headroom
/// 65536 - 32 + 262144 = 327648, page-aligned 327680.
const INITRD_GZ: &[u8] = &[
    0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
    18, 0, 0, 1, 0,
];
const INITRD_HEADROOM: u64 = 327_680;
const MIB: u64 = 1 << 20;

fn module(
    kind: ModuleKind,
    origin: ModuleOrigin,
    bytes: &[u8],
    cmdline: &str,
    node: &str,
) -> BootModule {
    BootModule {
        kind,
        origin,
        bytes: bytes.into(),
        cmdline: cmdline.into(),
        compression: None,
        headroom: 0,
        node: node.into(),
    }
}

fn gz(mut m: BootModule) -> BootModule {
    m.compression = Some(Compression::Gzip);
    m.headroom = INITRD_HEADROOM;
    m
}

/// A domain at node path `node` (its name is the last component).
#[allow(clippy::too_many_arguments)]
fn domain(
    domid: u32,
    node: &str,
    memory: u64,
    vcpus: u32,
    kernel: usize,
    ramdisk: Option<usize>,
    cmdline: &str,
) -> BootDomain {
    BootDomain {
        domid,
        name: node.rsplit('/').next().unwrap().into(),
        node: node.into(),
        mode: DomainMode::Pvh,
        long_mode: false,
        capabilities: Capabilities::empty(),
        memory,
        memory_asked: memory,
        mem_min: memory,
        mem_max: memory,
        vcpus,
        kernel,
        ramdisk,
        extra_modules: vec![],
        cmdline: cmdline.into(),
        boot: DomainBoot::default(),
    }
}

/// A `BootInfo` as the test sources give it: no command line, no host
/// map, a 1 GiB host.
fn info(modules: Vec<BootModule>, domains: Vec<BootDomain>) -> BootInfo {
    BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules,
        domains,
        host_memory_limit: GIB,
    }
}

fn example_files() -> Scratch {
    let s = Scratch::new();
    s.file("vmlinux", VMLINUX);
    s.file("initrd.img", INITRD_GZ);
    s.file("probe.elf", PROBE);
    s
}

fn dom0less_expected(dir: &Path) -> BootInfo {
    BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Kernel,
                ModuleOrigin::File(dir.join("vmlinux")),
                VMLINUX,
                "console=ttyS0",
                "/chosen/domU1/module@1",
            ),
            gz(module(
                ModuleKind::Ramdisk,
                ModuleOrigin::File(dir.join("initrd.img")),
                INITRD_GZ,
                "",
                "/chosen/domU1/module@2",
            )),
            module(
                ModuleKind::Kernel,
                ModuleOrigin::File(dir.join("probe.elf")),
                PROBE,
                "hello",
                "/chosen/domU2/module@1",
            ),
        ],
        domains: vec![
            domain(
                1,
                "/chosen/domU1",
                256 * MIB,
                2,
                0,
                Some(1),
                "console=ttyS0",
            ),
            domain(2, "/chosen/domU2", 128 * MIB, 1, 2, None, "hello"),
        ],
        host_memory_limit: GIB,
    }
}

/// The dom0less example of bootdt.md, built in code.
fn dom0less_tree() -> Vec<u8> {
    let kernel = |name: &str, file: &str, args: &str| {
        Node::new(name)
            .prop("compatible", ["multiboot,kernel", "multiboot,module"])
            .prop("xen,uefi-binary", file)
            .prop("bootargs", args)
    };
    let mut chosen = Node::new("chosen")
        .prop("#address-cells", 2u32)
        .prop("#size-cells", 2u32);
    chosen.children = vec![
        Node::new("domU1")
            .prop("compatible", "xen,domain")
            .prop("#address-cells", 2u32)
            .prop("#size-cells", 2u32)
            .prop("memory", [0, 0x40000])
            .prop("cpus", 2u32)
            .child(kernel("module@1", "vmlinux", "console=ttyS0"))
            .child(
                Node::new("module@2")
                    .prop("compatible", ["multiboot,ramdisk", "multiboot,module"])
                    .prop("xen,uefi-binary", "initrd.img"),
            ),
        Node::new("domU2")
            .prop("compatible", "xen,domain")
            .prop("#address-cells", 2u32)
            .prop("#size-cells", 2u32)
            .prop("memory", [0, 0x20000])
            .prop("cpus", 1u32)
            .child(kernel("module@1", "probe.elf", "hello")),
    ];
    blob(vec![chosen])
}

#[test]
fn dom0less_example_from_dtc() {
    let Some(dtb) = dtc("dom0less.dts") else {
        return;
    };
    let files = example_files();
    let info = bootinfo::parse(&dtb, sources(&[], Some(&files.0))).unwrap();
    assert_eq!(info, dom0less_expected(&files.0));
}

#[test]
fn dom0less_example_built_in_code() {
    let files = example_files();
    let info = bootinfo::parse(&dom0less_tree(), sources(&[], Some(&files.0))).unwrap();
    assert_eq!(info, dom0less_expected(&files.0));
}

fn example_loader_modules(kernel2_cmdline: &str) -> Vec<bootinfo::LoaderModule> {
    vec![
        lm(VMLINUX, ""),
        lm(INITRD_GZ, ""),
        lm(PROBE, kernel2_cmdline),
    ]
}

fn hyperlaunch_expected() -> BootInfo {
    BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Kernel,
                ModuleOrigin::ModuleIndex(0),
                VMLINUX,
                "console=ttyS0",
                "/chosen/hypervisor/domU1/kernel",
            ),
            gz(module(
                ModuleKind::Ramdisk,
                ModuleOrigin::ModuleIndex(1),
                INITRD_GZ,
                "",
                "/chosen/hypervisor/domU1/ramdisk",
            )),
            module(
                ModuleKind::Kernel,
                ModuleOrigin::ModuleIndex(2),
                PROBE,
                "hello",
                "/chosen/hypervisor/domU2/kernel",
            ),
        ],
        domains: vec![
            domain(
                1,
                "/chosen/hypervisor/domU1",
                256 * MIB,
                2,
                0,
                Some(1),
                "console=ttyS0",
            ),
            domain(
                2,
                "/chosen/hypervisor/domU2",
                128 * MIB,
                1,
                2,
                None,
                "hello",
            ),
        ],
        host_memory_limit: GIB,
    }
}

/// The hyperlaunch form of the example, built in code.
fn hyperlaunch_tree() -> Vec<u8> {
    let module = |name: &str, kind: &str, index: u32| {
        Node::new(name)
            .prop("compatible", [kind, "multiboot,module"])
            .prop("module-index", index)
    };
    hyperlaunch(vec![
        Node::new("domU1")
            .prop("compatible", "xen,domain")
            .prop("domid", 1u32)
            .prop("mode", 0u32)
            .prop("memory", [0, 0x40000])
            .prop("cpus", 2u32)
            .child(module("kernel", "multiboot,kernel", 0).prop("bootargs", "console=ttyS0"))
            .child(module("ramdisk", "multiboot,ramdisk", 1)),
        Node::new("domU2")
            .prop("compatible", "xen,domain")
            .prop("domid", 2u32)
            .prop("mode", 0u32)
            .prop("memory", [0, 0x20000])
            .prop("cpus", 1u32)
            .child(module("kernel", "multiboot,kernel", 2).prop("bootargs", "hello")),
    ])
}

#[test]
fn hyperlaunch_example_from_dtc() {
    let Some(dtb) = dtc("hyperlaunch.dts") else {
        return;
    };
    let mods = example_loader_modules("");
    let info = bootinfo::parse(&dtb, sources(&mods, None)).unwrap();
    assert_eq!(info, hyperlaunch_expected());
}

#[test]
fn hyperlaunch_example_built_in_code() {
    let mods = example_loader_modules("");
    let info = bootinfo::parse(&hyperlaunch_tree(), sources(&mods, None)).unwrap();
    assert_eq!(info, hyperlaunch_expected());
}

#[test]
fn loader_module_string_wins_over_bootargs() {
    let mods = example_loader_modules("from the loader");
    let info = bootinfo::parse(&hyperlaunch_tree(), sources(&mods, None)).unwrap();
    let mut expected = hyperlaunch_expected();
    expected.modules[2].cmdline = "from the loader".into();
    expected.domains[1].cmdline = "from the loader".into();
    assert_eq!(info, expected);
}

#[test]
fn modules_by_reg_with_guessed_kinds() {
    let Some(dtb) = dtc("reg.dts") else { return };
    let (a, b, c, d, e) = (
        &[1u8; 16][..],
        &[2u8; 32][..],
        &[3u8; 8][..],
        &[4u8; 4][..],
        &[5u8; 4][..],
    );
    let mods = vec![
        lm_at(a, 0x100_0000, ""),
        lm_at(b, 0x200_0000, ""),
        lm_at(c, 0x300_0000, "loader wins"),
        lm_at(d, 0x400_0000, ""),
        lm_at(e, 0x500_0000, ""),
    ];
    let info = bootinfo::parse(&dtb, sources(&mods, None)).unwrap();
    let reg = |addr, size| ModuleOrigin::Reg { addr, size };
    let expected = BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Kernel,
                reg(0x100_0000, 0x10),
                a,
                "root=/dev/ram0",
                "/chosen/domA/module@1000000",
            ),
            module(
                ModuleKind::Ramdisk,
                reg(0x200_0000, 0x20),
                b,
                "",
                "/chosen/domA/module@2000000",
            ),
            module(
                ModuleKind::Kernel,
                reg(0x300_0000, 8),
                c,
                "loader wins",
                "/chosen/domB/module@3000000",
            ),
            module(
                ModuleKind::Ramdisk,
                reg(0x400_0000, 4),
                d,
                "",
                "/chosen/domB/module@4000000",
            ),
            module(
                ModuleKind::DeviceTree,
                reg(0x500_0000, 4),
                e,
                "",
                "/chosen/domB/module@5000000",
            ),
        ],
        domains: vec![
            BootDomain {
                capabilities: Capabilities::CONTROL | Capabilities::HARDWARE,
                ..domain(7, "/chosen/domA", 64 * MIB, 1, 0, Some(1), "root=/dev/ram0")
            },
            BootDomain {
                extra_modules: vec![4],
                ..domain(1, "/chosen/domB", 32 * MIB, 3, 2, Some(3), "loader wins")
            },
        ],
        host_memory_limit: GIB,
    };
    assert_eq!(info, expected);
}

#[test]
fn design_document_style_with_config_node() {
    let Some(dtb) = dtc("design.dts") else { return };
    let (ucode, xsm) = (b"ucode".as_slice(), b"flask".as_slice());
    let mods = vec![
        lm(ucode, ""),
        lm(xsm, ""),
        lm(VMLINUX, ""),
        lm(INITRD_GZ, ""),
    ];
    let info = bootinfo::parse(&dtb, sources(&mods, None)).unwrap();
    let idx = ModuleOrigin::ModuleIndex;
    let expected = BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Microcode,
                idx(0),
                ucode,
                "",
                "/chosen/hypervisor/config/microcode",
            ),
            module(
                ModuleKind::XsmPolicy,
                idx(1),
                xsm,
                "",
                "/chosen/hypervisor/config/xsm",
            ),
            module(
                ModuleKind::Kernel,
                idx(2),
                VMLINUX,
                "console=hvc0",
                "/chosen/hypervisor/dom0/kernel",
            ),
            gz(module(
                ModuleKind::Ramdisk,
                idx(3),
                INITRD_GZ,
                "",
                "/chosen/hypervisor/dom0/ramdisk",
            )),
            module(
                ModuleKind::Kernel,
                idx(2),
                VMLINUX,
                "shared kernel",
                "/chosen/hypervisor/legacy/zimage",
            ),
        ],
        domains: vec![
            BootDomain {
                capabilities: Capabilities::CONTROL | Capabilities::HARDWARE,
                long_mode: true,
                mem_min: 64 * MIB,
                mem_max: 256 * MIB,
                ..domain(
                    0,
                    "/chosen/hypervisor/dom0",
                    128 * MIB,
                    2,
                    2,
                    Some(3),
                    "console=hvc0",
                )
            },
            domain(
                1,
                "/chosen/hypervisor/legacy",
                32 * MIB,
                1,
                4,
                None,
                "shared kernel",
            ),
        ],
        host_memory_limit: GIB,
    };
    assert_eq!(info, expected);
    // The two domains share one copy of the kernel.
    assert!(
        info.modules[2]
            .bytes
            .shares_bytes_with(&info.modules[4].bytes)
    );
}

#[test]
fn dom0less_and_hyperlaunch_domains_in_one_tree() {
    let files = example_files();
    let mods = example_loader_modules("");
    let tree = chosen(vec![
        Node::new("domU1")
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 0x40000])
            .prop("cpus", 2u32)
            .child(
                Node::new("k")
                    .prop("compatible", "multiboot,kernel")
                    .prop("xen,uefi-binary", "vmlinux"),
            ),
        Node::new("hypervisor")
            .prop("compatible", "hypervisor,xen")
            .child(
                Node::new("domU2")
                    .prop("compatible", "xen,domain")
                    .prop("domid", 1u32)
                    .prop("memory", [0, 0x20000])
                    .child(
                        Node::new("k")
                            .prop("compatible", "multiboot,kernel")
                            .prop("module-index", 2u32),
                    ),
            ),
    ]);
    let info = bootinfo::parse(&tree, sources(&mods, Some(&files.0))).unwrap();
    let expected = BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Kernel,
                ModuleOrigin::File(files.0.join("vmlinux")),
                VMLINUX,
                "",
                "/chosen/domU1/k",
            ),
            module(
                ModuleKind::Kernel,
                ModuleOrigin::ModuleIndex(2),
                PROBE,
                "",
                "/chosen/hypervisor/domU2/k",
            ),
        ],
        // domid 1 is taken by the hyperlaunch domain, so domU1 gets 2.
        domains: vec![
            domain(2, "/chosen/domU1", 256 * MIB, 2, 0, None, ""),
            domain(1, "/chosen/hypervisor/domU2", 128 * MIB, 1, 1, None, ""),
        ],
        host_memory_limit: GIB,
    };
    assert_eq!(info, expected);
}

#[test]
fn single_domain_from_boot_options() {
    let s = Scratch::new();
    let kernel = s.file("k.elf", VMLINUX);
    let initrd = s.file("initrd", INITRD_GZ);
    let extra = s.file("extra", b"data");
    let spec = SingleDomain::new(
        CliModule::read("--kernel", kernel.clone(), "").unwrap(),
        512 * MIB,
    )
    .initrd(Some(
        CliModule::read("--initrd", initrd.clone(), "").unwrap(),
    ))
    .module(CliModule::read("--module", extra.clone(), "m=1").unwrap())
    .cmdline("console=ttyS0")
    .cpus(2)
    .boot(DomainBoot::default())
    .host_memory_limit(GIB);
    let info = BootInfo::single_domain(spec).unwrap();
    let cli = |option, path: &Path| ModuleOrigin::CommandLine {
        option,
        path: Some(path.to_path_buf()),
    };
    let expected = BootInfo {
        loader_name: LOADER_NAME.into(),
        cmdline: String::new(),
        host_memmap: vec![],
        modules: vec![
            module(
                ModuleKind::Kernel,
                cli("--kernel", &kernel),
                VMLINUX,
                "console=ttyS0",
                "--kernel",
            ),
            gz(module(
                ModuleKind::Ramdisk,
                cli("--initrd", &initrd),
                INITRD_GZ,
                "",
                "--initrd",
            )),
            module(
                ModuleKind::Unknown,
                cli("--module", &extra),
                b"data",
                "m=1",
                "--module",
            ),
        ],
        domains: vec![BootDomain {
            extra_modules: vec![2],
            name: "guest".into(),
            ..domain(1, "command line", 512 * MIB, 2, 0, Some(1), "console=ttyS0")
        }],
        host_memory_limit: GIB,
    };
    assert_eq!(info, expected);
}

#[test]
fn single_domain_checks_memory_and_cpus() {
    let probe = CliModule::new("--kernel", pvh_loader::input::Input::built_in(PROBE));
    let spec = |memory, cpus| {
        SingleDomain::new(probe.clone(), memory)
            .cpus(cpus)
            .host_memory_limit(GIB)
    };
    assert!(matches!(
        BootInfo::single_domain(spec(2 * GIB, 1)),
        Err(bootinfo::BootInfoError::MemoryOverLimit { property: "--memory", bytes, limit: GIB, .. }) if bytes == 2 * GIB
    ));
    assert!(matches!(
        BootInfo::single_domain(spec(MIB, 0)),
        Err(bootinfo::BootInfoError::InvalidValue {
            property: "--cpus",
            value: 0,
            ..
        })
    ));
    assert!(matches!(
        BootInfo::single_domain(spec(MIB, 256)),
        Err(bootinfo::BootInfoError::InvalidValue {
            property: "--cpus",
            value: 256,
            ..
        })
    ));
    assert!(matches!(
        CliModule::read("--initrd", "/nonexistent/pvh-initrd".into(), ""),
        Err(bootinfo::BootInfoError::FileMissing { .. })
    ));
}

#[test]
fn a_dom0less_tree_as_xens_booting_txt_writes_it() {
    let Some(dtb) = dtc("xen-dom0less.dts") else {
        return;
    };
    // The boot loader's modules at the addresses the tree names, each
    // smaller than its 0xffffff-byte region.
    let (k1, r1, k2, r2) = (
        &[1u8; 4096][..],
        &[2u8; 100][..],
        &[3u8; 8][..],
        &[4u8; 9][..],
    );
    let mods = vec![
        lm_at(k1, 0x4a00_0000, ""),
        lm_at(r1, 0x4b00_0000, ""),
        lm_at(k2, 0x4c00_0000, ""),
        lm_at(r2, 0x4d00_0000, ""),
    ];
    let parsed = bootinfo::parse(&dtb, sources(&mods, None)).unwrap();
    let reg = |addr| ModuleOrigin::Reg {
        addr,
        size: 0xff_ffff,
    };
    let at = |kind, addr, bytes: &[u8], cmdline: &str, node: &str| BootModule {
        headroom: 0xff_ffff - bytes.len() as u64,
        ..module(kind, reg(addr), bytes, cmdline, node)
    };
    let args = "console=ttyAMA0 init=/bin/sh";
    let expected = info(
        vec![
            at(
                ModuleKind::Kernel,
                0x4a00_0000,
                k1,
                args,
                "/chosen/domU1/module@4a000000",
            ),
            at(
                ModuleKind::Ramdisk,
                0x4b00_0000,
                r1,
                "",
                "/chosen/domU1/module@4b000000",
            ),
            at(
                ModuleKind::Kernel,
                0x4c00_0000,
                k2,
                args,
                "/chosen/domU2/module@4c000000",
            ),
            at(
                ModuleKind::Ramdisk,
                0x4d00_0000,
                r2,
                "",
                "/chosen/domU2/module@4d000000",
            ),
        ],
        vec![
            domain(1, "/chosen/domU1", 128 * MIB, 2, 0, Some(1), args),
            domain(2, "/chosen/domU2", 64 * MIB, 1, 2, Some(3), args),
        ],
    );
    assert_eq!(parsed, expected);
}

#[test]
fn a_hyperlaunch_tree_numbered_as_xens_design_numbers_it() {
    let Some(dtb) = dtc("xen-hyperlaunch.dts") else {
        return;
    };
    // The design's list after the tree (module 0): microcode, XSM policy,
    // the boot domain's kernel, ramdisk and config, dom0's kernel and
    // ramdisk.
    let mut policy = bootinfo::XSM_MAGIC.to_le_bytes().to_vec();
    policy.extend_from_slice(b"policy");
    let blobs: [&[u8]; 7] = [
        b"ucode",
        &policy,
        b"\x7fELF boot domain",
        b"070701 boot initrd",
        b"boot config",
        VMLINUX,
        INITRD_GZ,
    ];
    let mods: Vec<_> = blobs.iter().map(|b| lm(b, "")).collect();
    let xen = sources(&mods, None).numbering(bootinfo::ModuleNumbering::TreeIsZero);
    let parsed = bootinfo::parse(&dtb, xen).unwrap();
    let idx = ModuleOrigin::ModuleIndex;
    let hv = "/chosen/hypervisor";
    let expected = info(
        vec![
            module(
                ModuleKind::Microcode,
                idx(1),
                blobs[0],
                "",
                &format!("{hv}/xen-config/microcode"),
            ),
            module(
                ModuleKind::XsmPolicy,
                idx(2),
                blobs[1],
                "",
                &format!("{hv}/xen-config/policy"),
            ),
            module(
                ModuleKind::Kernel,
                idx(3),
                blobs[2],
                "",
                &format!("{hv}/domB/kernel"),
            ),
            module(
                ModuleKind::Ramdisk,
                idx(4),
                blobs[3],
                "",
                &format!("{hv}/domB/initrd"),
            ),
            module(
                ModuleKind::Config,
                idx(5),
                blobs[4],
                "",
                &format!("{hv}/domB/dom-config"),
            ),
            module(
                ModuleKind::Kernel,
                idx(6),
                VMLINUX,
                "console=hvc0",
                &format!("{hv}/dom0/kernel"),
            ),
            gz(module(
                ModuleKind::Ramdisk,
                idx(7),
                INITRD_GZ,
                "",
                &format!("{hv}/dom0/initrd"),
            )),
        ],
        vec![
            BootDomain {
                extra_modules: vec![4],
                ..domain(1, &format!("{hv}/domB"), 128 * MIB, 1, 2, Some(3), "")
            },
            BootDomain {
                long_mode: true,
                ..domain(
                    0,
                    &format!("{hv}/dom0"),
                    128 * MIB,
                    1,
                    5,
                    Some(6),
                    "console=hvc0",
                )
            },
        ],
    );
    assert_eq!(parsed, expected);
    // Counted from 0 (pvh's default), the same tree is off by one: mb-index
    // 7 is past the seven modules.
    assert!(matches!(
        bootinfo::parse(&dtb, sources(&mods, None)),
        Err(bootinfo::BootInfoError::ModuleIndexOutOfRange {
            index: 7,
            first: 0,
            count: 7,
            ..
        })
    ));
}
