//! Every bootinfo error, each from a tree that has exactly that one fault,
//! with the node path, property and values the error must carry.

mod bootinfo_util;

use bootinfo_util::*;
use pvh_bootdomains::{
    self as bootinfo, BlobError, BootInfoError as E, LoaderModule, ModuleKind, ModuleNumbering,
    XSM_MAGIC,
};

const KERNEL: &[u8] = b"\x7fELF kernel";

/// A valid dom0less domain whose kernel is loader module 0.
fn dom(name: &str) -> Node {
    Node::new(name)
        .prop("compatible", "xen,domain")
        .prop("memory", [0, 0x1000])
        .prop("cpus", 1u32)
        .child(kernel())
}

fn kernel() -> Node {
    Node::new("kernel")
        .prop("compatible", ["multiboot,kernel", "multiboot,module"])
        .prop("module-index", 0u32)
}

fn mods() -> Vec<LoaderModule> {
    vec![lm(KERNEL, "")]
}

fn parse(tree: &[u8]) -> Result<bootinfo::BootInfo, E> {
    let m = mods();
    bootinfo::parse(tree, sources(&m, None))
}

fn err(tree: &[u8]) -> E {
    parse(tree).expect_err("tree must be rejected")
}

#[test]
fn the_base_tree_is_valid() {
    let info = parse(&chosen(vec![dom("d")])).unwrap();
    assert_eq!(info.domains.len(), 1);
    assert_eq!(info.domains[0].memory, 0x1000 * 1024);
}

// ---- structure of the blob ----

fn be(blob: &mut [u8], field: usize, v: u32) {
    blob[field * 4..field * 4 + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn header_errors() {
    let good = chosen(vec![dom("d")]);
    assert!(matches!(
        err(&good[..39]),
        E::Blob(BlobError::TooShort { len: 39 })
    ));
    let mut b = good.clone();
    be(&mut b, 0, 0xfeed_d00d);
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadMagic { magic: 0xfeed_d00d })
    ));
    let mut b = good.clone();
    let len = b.len();
    be(&mut b, 1, len as u32 + 1);
    assert!(
        matches!(err(&b), E::Blob(BlobError::TotalSize { totalsize, len: l }) if totalsize as usize == len + 1 && l == len)
    );
    let mut b = good.clone();
    be(&mut b, 5, 16);
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::Version {
            version: 16,
            last_comp: 16
        })
    ));
    let mut b = good.clone();
    be(&mut b, 9, 0x10_0000); // size_dt_struct
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BlockOutOfBounds {
            block: "structure",
            size: 0x10_0000,
            ..
        })
    ));
    let mut b = good.clone();
    be(&mut b, 3, u32::MAX); // off_dt_strings
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BlockOutOfBounds {
            block: "strings",
            offset: u32::MAX,
            ..
        })
    ));
}

/// The structure block of `blob` and its offset.
fn struct_block(blob: &[u8]) -> (usize, usize) {
    let f = |i: usize| u32::from_be_bytes(blob[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    (f(2), f(9))
}

#[test]
fn structure_errors() {
    let good = chosen(vec![dom("d")]);
    let (off, size) = struct_block(&good);

    // Cut the structure block short: the scan runs off its end.
    let mut b = good.clone();
    be(&mut b, 9, (size - 8) as u32);
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::Truncated { .. }) | E::Blob(BlobError::BadToken { .. })
    ));

    // A NOP token replacing the first property's tag.
    let mut b = good.clone();
    let first_prop = (off..off + size)
        .step_by(4)
        .find(|&i| b[i..i + 4] == 3u32.to_be_bytes())
        .unwrap();
    b[first_prop..first_prop + 4].copy_from_slice(&4u32.to_be_bytes());
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadToken {
            token: 4,
            reason: "NOP tokens are not supported",
            ..
        })
    ));

    // An unknown token.
    b[first_prop..first_prop + 4].copy_from_slice(&7u32.to_be_bytes());
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadToken { token: 7, .. })
    ));

    // A property whose length runs past the block.
    let mut b = good.clone();
    b[first_prop + 4..first_prop + 8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::Truncated {
            what: "a property value",
            ..
        })
    ));

    // A property name offset past the strings block.
    let mut b = good.clone();
    b[first_prop + 8..first_prop + 12].copy_from_slice(&0xffffu32.to_be_bytes());
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadString {
            what: "property name",
            offset: 0xffff
        })
    ));

    // A node name that is not UTF-8 ("chosen" starts at struct + 12).
    let mut b = good.clone();
    b[off + 12] = 0xff;
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadString {
            what: "node name",
            ..
        })
    ));
}

#[test]
fn property_after_child_node_is_rejected() {
    // Hand-assembled: root { chosen { } ; prop } — vm-fdt cannot write it.
    let mut s = Vec::new();
    let tok = |s: &mut Vec<u8>, t: u32| s.extend_from_slice(&t.to_be_bytes());
    tok(&mut s, 1);
    tok(&mut s, 0); // root name "" + padding
    tok(&mut s, 1);
    s.extend_from_slice(b"chosen\0\0");
    tok(&mut s, 2);
    tok(&mut s, 3);
    tok(&mut s, 0); // len 0
    tok(&mut s, 0); // name offset 0
    tok(&mut s, 2);
    tok(&mut s, 9);
    let strings = b"x\0\0\0";
    let mut b = vec![0u8; 40];
    let total = 40 + 16 + s.len() + strings.len();
    for (i, v) in [
        0xd00d_feedu32,
        total as u32,
        56,
        (56 + s.len()) as u32,
        40,
        17,
        16,
        0,
        strings.len() as u32,
        s.len() as u32,
    ]
    .into_iter()
    .enumerate()
    {
        be(&mut b, i, v);
    }
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&s);
    b.extend_from_slice(strings);
    assert!(matches!(
        err(&b),
        E::Blob(BlobError::BadToken {
            token: 3,
            reason: "a property after a child node",
            ..
        })
    ));
}

#[test]
fn too_deep_and_named_root() {
    let mut n = Node::new("n");
    for _ in 0..20 {
        n = Node::new("n").child(n);
    }
    assert!(matches!(
        err(&blob(vec![n])),
        E::Blob(BlobError::TooDeep { max: 16, .. })
    ));
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let r = w.begin_node("root").unwrap();
    w.end_node(r).unwrap();
    let b = w.finish().unwrap();
    assert!(matches!(err(&b), E::Blob(BlobError::NamedRoot { name }) if name == "root"));
}

// ---- what the tree means ----

#[test]
fn no_chosen_and_no_domains() {
    assert!(matches!(err(&blob(vec![Node::new("memory")])), E::NoChosen));
    assert!(matches!(
        err(&chosen(vec![
            Node::new("stdout").prop("compatible", "ns16550")
        ])),
        E::NoDomains
    ));
}

#[test]
fn missing_and_malformed_properties() {
    assert!(matches!(
        err(&chosen(vec![dom("d").without("memory")])),
        E::MissingProperty { node, property: "memory" } if node == "/chosen/d"
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").without("cpus")])),
        E::MissingProperty { node, property: "cpus" } if node == "/chosen/d"
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("memory", [0, 1])])),
        E::DuplicateProperty { node, property: "memory" } if node == "/chosen/d"
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").without("memory").prop("memory", 0x1000u32)])),
        E::WrongLength { node, property: "memory", len: 4, .. } if node == "/chosen/d"
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("domid", [0, 1])])),
        E::WrongLength {
            property: "domid",
            len: 8,
            ..
        }
    ));
    let bad_args = kernel().prop("bootargs", V::Raw(b"no terminator".to_vec()));
    assert!(matches!(
        err(&with_kernel(bad_args)),
        E::NotAString { node, property: "bootargs" } if node == "/chosen/d/kernel"
    ));
    let bad_compat = dom("d").child(Node::new("m").prop("compatible", V::Raw(vec![b'a', 0xff, 0])));
    assert!(matches!(
        err(&chosen(vec![bad_compat])),
        E::NotAString { node, property: "compatible" } if node == "/chosen/d/m"
    ));
}

#[test]
fn domid_errors() {
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("domid", 0x7ff0u32)])),
        E::InvalidValue { node, property: "domid", value: 0x7ff0, .. } if node == "/chosen/d"
    ));
    let e = err(&hyperlaunch(vec![
        dom("a").prop("domid", 3u32),
        dom("b").prop("domid", 3u32),
    ]));
    assert!(matches!(
        e,
        E::DuplicateDomid { domid: 3, first, second }
            if first == "/chosen/hypervisor/a" && second == "/chosen/hypervisor/b"
    ));
}

#[test]
fn mode_and_capability_errors() {
    for (mode, what) in [
        (1u32, "a PV guest"),
        (2, "an HVM guest with a device model"),
        (3, "both PV and HVM (contradictory)"),
        (5, "a PV guest"),
    ] {
        let e = err(&hyperlaunch(vec![dom("d").prop("mode", mode)]));
        assert!(
            matches!(&e, E::UnsupportedMode { node, mode: m, what: w } if node == "/chosen/hypervisor/d" && *m == mode && *w == what),
            "{e:?}"
        );
    }
    assert!(matches!(
        err(&hyperlaunch(vec![dom("d").prop("mode", 0x18u32)])),
        E::UnknownModeBits {
            mode: 0x18,
            unknown: 0x18,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("capabilities", 0x9u32)])),
        E::UnknownCapabilities {
            value: 9,
            unknown: 8,
            ..
        }
    ));
}

#[test]
fn vcpu_count_errors() {
    let d = dom("d").without("cpus");
    assert!(matches!(
        err(&chosen(vec![d.clone().prop("cpus", 0u32)])),
        E::InvalidValue {
            property: "cpus",
            value: 0,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![d.prop("cpus", 256u32)])),
        E::InvalidValue {
            property: "cpus",
            value: 256,
            ..
        }
    ));
    // The limit is the one --cpus and the ACPI tables have: 32.
    let d = dom("d").without("cpus");
    assert!(parse(&chosen(vec![d.clone().prop("cpus", 32u32)])).is_ok());
    assert!(matches!(
        err(&chosen(vec![d.prop("cpus", 33u32)])),
        E::InvalidValue {
            property: "cpus",
            value: 33,
            ..
        }
    ));
}

#[test]
fn kernel_errors() {
    let mut no_kernel = dom("d");
    no_kernel.children.clear();
    assert!(matches!(
        err(&chosen(vec![no_kernel])),
        E::MissingKernel { node } if node == "/chosen/d"
    ));
    let two = dom("d").child(
        Node::new("k2")
            .prop("compatible", "module,kernel")
            .prop("module-index", 0u32),
    );
    assert!(matches!(
        err(&chosen(vec![two])),
        E::DuplicateModule { kind: ModuleKind::Kernel, first, second }
            if first == "/chosen/d/kernel" && second == "/chosen/d/k2"
    ));
    // Explicit kernel + one unknown-kind module: the unknown one is guessed
    // to be the kernel (first unknown), a second kernel.
    let guessed = dom("d").child(
        Node::new("m")
            .prop("compatible", "multiboot,module")
            .prop("module-index", 0u32),
    );
    assert!(matches!(
        err(&chosen(vec![guessed])),
        E::DuplicateModule {
            kind: ModuleKind::Kernel,
            ..
        }
    ));
}

fn with_kernel(k: Node) -> Vec<u8> {
    let mut d = dom("d");
    d.children = vec![k];
    chosen(vec![d])
}

#[test]
fn location_errors() {
    let k = || Node::new("k").prop("compatible", "multiboot,kernel");
    assert!(matches!(
        err(&with_kernel(k())),
        E::NoLocation { node } if node == "/chosen/d/k"
    ));
    assert!(matches!(
        err(&with_kernel(
            k().prop("module-index", 0u32).prop("reg", [0, 0x1000, 4])
        )),
        E::ConflictingLocation {
            first: "module-index",
            second: "reg",
            ..
        }
    ));
    assert!(matches!(
        err(&with_kernel(
            k().prop("module-index", 0u32).prop("mb-index", 0u32)
        )),
        E::ConflictingLocation {
            first: "module-index",
            second: "mb-index",
            ..
        }
    ));
    assert!(matches!(
        err(&with_kernel(k().prop("mb-index", 5u32))),
        E::ModuleIndexOutOfRange {
            property: "mb-index",
            index: 5,
            count: 1,
            ..
        }
    ));
    assert!(matches!(
        err(&with_kernel(k().prop("xen,uefi-binary", "vmlinux"))),
        E::NoModuleDir { name, .. } if name == "vmlinux"
    ));
    let dir = Scratch::new();
    let m = mods();
    let with_dir =
        |tree: &[u8]| bootinfo::parse(tree, sources(&m, Some(&dir.0))).expect_err("rejected");
    for name in ["../etc/passwd", "a/b", "..", ""] {
        let e = with_dir(&with_kernel(k().prop("xen,uefi-binary", name)));
        assert!(
            matches!(&e, E::BadFileName { name: n, .. } if n == name),
            "{e:?}"
        );
    }
    let e = with_dir(&with_kernel(k().prop("xen,uefi-binary", "absent")));
    assert!(
        matches!(e, E::FileMissing { node, path, .. } if node == "/chosen/d/k" && path == dir.0.join("absent"))
    );
}

#[test]
fn reg_errors() {
    let k = |reg: [u32; 3]| {
        Node::new("k")
            .prop("compatible", "multiboot,kernel")
            .prop("reg", reg)
    };
    let placed = [lm_at(KERNEL, 0x1000, "")];
    let run = |tree: &[u8]| bootinfo::parse(tree, sources(&placed, None));
    // Default cells: 2 address, 1 size.
    let ok = run(&with_kernel(k([0, 0x1000, KERNEL.len() as u32]))).unwrap();
    assert_eq!(
        ok.modules[0].origin,
        bootinfo::ModuleOrigin::Reg {
            addr: 0x1000,
            size: KERNEL.len() as u64
        }
    );
    assert!(matches!(
        run(&with_kernel(k([0, 0x2000, 4]))),
        Err(E::RegNowhere {
            property: "reg",
            addr: 0x2000,
            size: 4,
            ..
        })
    ));
    assert!(matches!(
        run(&with_kernel(k([0, 0x1000, 4]))),
        Err(E::RegTooSmall { property: "reg", addr: 0x1000, reg_size: 4, module_size, .. }) if module_size == KERNEL.len() as u64
    ));
    // A region larger than the file: the rest is headroom.
    let big = run(&with_kernel(k([0, 0x1000, 0x10_0000]))).unwrap();
    assert_eq!(big.modules[0].headroom, 0x10_0000 - KERNEL.len() as u64);
    let short = Node::new("k")
        .prop("compatible", "multiboot,kernel")
        .prop("reg", [0x1000u32]);
    let e = run(&with_kernel(short)).unwrap_err();
    assert!(
        matches!(&e, E::RegLength { node, property: "reg", len: 4, address_cells, size_cells }
            if node == "/chosen/d/k" && address_cells.value == 2 && address_cells.from.is_none()
                && size_cells.value == 1 && size_cells.from.is_none()),
        "{e:?}"
    );
    // The message says which defaults were assumed.
    assert_eq!(
        e.to_string(),
        "/chosen/d/k: `reg` is 4 bytes, expected one address/size pair: \
         #address-cells = 2 (the devicetree default: no ancestor sets it), \
         #size-cells = 1 (the devicetree default: no ancestor sets it)"
    );
    let mut three = dom("d").prop("#address-cells", 3u32);
    three.children = vec![k([0, 0x1000, 4])];
    let e = run(&chosen(vec![three])).unwrap_err();
    assert!(
        matches!(&e, E::InvalidCells { node, property: "reg", cells: "#address-cells", count }
            if node == "/chosen/d/k" && count.value == 3 && count.from.as_deref() == Some("/chosen/d")),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("#address-cells = 3 (from /chosen/d)"),
        "{e}"
    );
    let twice = [lm_at(KERNEL, 0x1000, ""), lm_at(KERNEL, 0x1000, "")];
    assert!(matches!(
        bootinfo::parse(&with_kernel(k([0, 0x1000, 4])), sources(&twice, None)),
        Err(E::DuplicateModuleAddress {
            addr: 0x1000,
            first: 0,
            second: 1
        })
    ));
}

#[test]
fn cells_come_from_the_nearest_ancestor() {
    let placed = [lm_at(KERNEL, 0x1000, "")];
    let k = |reg: Vec<u32>| {
        Node::new("k")
            .prop("compatible", "multiboot,kernel")
            .prop("reg", V::Cells(reg))
    };
    let dom_with = |reg| {
        let mut d = dom("d");
        d.children = vec![k(reg)];
        d
    };
    // /chosen says 1 and 1: the domain (silent) inherits them.
    let mut c = Node::new("chosen")
        .prop("#address-cells", 1u32)
        .prop("#size-cells", 1u32);
    c.children = vec![dom_with(vec![0x1000, 0x100])];
    let info = bootinfo::parse(&blob(vec![c]), sources(&placed, None)).unwrap();
    assert_eq!(
        info.modules[0].origin,
        bootinfo::ModuleOrigin::Reg {
            addr: 0x1000,
            size: 0x100
        }
    );
    // The root says 2 and 2, /chosen only the size: 2 from /, 1 from
    // /chosen.
    // (vm-fdt here: the helpers write no root properties.)
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let ch = w.begin_node("chosen").unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let d = w.begin_node("d").unwrap();
    w.property_string("compatible", "xen,domain").unwrap();
    w.property_array_u32("memory", &[0, 0x1000]).unwrap();
    w.property_u32("cpus", 1).unwrap();
    let kn = w.begin_node("k").unwrap();
    w.property_string("compatible", "multiboot,kernel").unwrap();
    w.property_array_u32("reg", &[0, 0x1000]).unwrap();
    w.end_node(kn).unwrap();
    w.end_node(d).unwrap();
    w.end_node(ch).unwrap();
    w.end_node(r).unwrap();
    let tree = w.finish().unwrap();
    let e = bootinfo::parse(&tree, sources(&placed, None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/chosen/d/k: `reg` is 8 bytes, expected one address/size pair: \
         #address-cells = 2 (from /), #size-cells = 1 (from /chosen)"
    );
    // The domain's own values win over its ancestors'.
    let mut c = Node::new("chosen").prop("#address-cells", 1u32);
    let d = dom_with(vec![0, 0x1000, 0, 0x100])
        .prop("#address-cells", 2u32)
        .prop("#size-cells", 2u32);
    c.children = vec![d];
    let info = bootinfo::parse(&blob(vec![c]), sources(&placed, None)).unwrap();
    assert_eq!(info.modules[0].headroom, 0x100 - KERNEL.len() as u64);
}

#[test]
fn cell_counts_of_chosen_and_the_root_are_checked_too() {
    // Found by fuzzing: /chosen with `#address-cells` twice.
    let mut c = Node::new("chosen")
        .prop("#address-cells", 2u32)
        .prop("#address-cells", 2u32);
    c.children = vec![dom("d")];
    assert!(matches!(
        err(&blob(vec![c])),
        E::DuplicateProperty { node, property: "#address-cells" } if node == "/chosen"
    ));
    let mut c = Node::new("chosen").prop("#size-cells", [1u32, 1]);
    c.children = vec![dom("d")];
    assert!(matches!(
        err(&blob(vec![c])),
        E::WrongLength { node, property: "#size-cells", len: 8, .. } if node == "/chosen"
    ));
}

#[test]
fn module_addr_is_reg_by_another_name() {
    let placed = [lm_at(KERNEL, 0x1000, "")];
    let k = Node::new("k")
        .prop("compatible", "module,kernel")
        .prop("module-addr", [0, 0x1000, 0x20]);
    let info = bootinfo::parse(&with_kernel(k), sources(&placed, None)).unwrap();
    assert_eq!(
        info.modules[0].origin,
        bootinfo::ModuleOrigin::Reg {
            addr: 0x1000,
            size: 0x20
        }
    );
    let both = Node::new("k")
        .prop("compatible", "module,kernel")
        .prop("reg", [0, 0x1000, 0x20])
        .prop("module-addr", [0, 0x1000, 0x20]);
    assert!(matches!(
        bootinfo::parse(&with_kernel(both), sources(&placed, None)),
        Err(E::ConflictingLocation {
            first: "reg",
            second: "module-addr",
            ..
        })
    ));
    let nowhere = Node::new("k")
        .prop("compatible", "module,kernel")
        .prop("module-addr", [0, 0x9000, 0x20]);
    assert!(matches!(
        bootinfo::parse(&with_kernel(nowhere), sources(&placed, None)),
        Err(E::RegNowhere {
            property: "module-addr",
            addr: 0x9000,
            ..
        })
    ));
}

#[test]
fn memory_errors() {
    let d = || dom("d").without("memory");
    assert!(matches!(
        err(&chosen(vec![d().prop("memory", [0x4000_0000, 0])])),
        E::MemoryOverflow {
            property: "memory",
            kib: 0x4000_0000_0000_0000,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![
            d().prop("memory", [0, 0x1000]).prop("mem-min", [0, 0x2000])
        ])),
        E::MemoryRange {
            min: 0x80_0000,
            memory: 0x40_0000,
            max: 0x40_0000,
            ..
        }
    ));
    // Without mem-min, memory is the least the domain takes.
    assert!(matches!(
        err(&chosen(vec![d().prop("memory", [0, 0x10_0001])])),
        E::MemoryOverLimit {
            property: "memory",
            bytes: 0x4000_0400,
            limit: GIB,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![
            d().prop("memory", [0, 0x20_0000])
                .prop("mem-min", [0, 0x10_0001])
        ])),
        E::MemoryOverLimit {
            property: "mem-min",
            bytes: 0x4000_0400,
            ..
        }
    ));
    // mem-max is a ceiling, not a reservation: over the host is fine.
    let info = parse(&chosen(vec![
        d().prop("memory", [0, 0x1000])
            .prop("mem-max", [0, 0x20_0000]),
    ]))
    .unwrap();
    assert_eq!(info.domains[0].mem_max, 2 * GIB);
    // Three domains of 384 MiB: each fits, together they do not.
    let big = |n: &str| {
        let mut node = d().prop("memory", [0, 0x6_0000]);
        node.name = n.into();
        node
    };
    assert!(matches!(
        err(&chosen(vec![big("a"), big("b"), big("c")])),
        E::TotalMemoryOverLimit {
            total: 0x4800_0000,
            limit: GIB
        }
    ));
    // Lowered to mem-min they would still not fit.
    let low = |n: &str| big(n).prop("mem-min", [0, 0x5_8000]);
    assert!(matches!(
        err(&chosen(vec![low("a"), low("b"), low("c")])),
        E::TotalMemoryOverLimit {
            total: 0x4200_0000,
            limit: GIB
        }
    ));
    assert!(
        err(&chosen(vec![low("a"), low("b"), low("c")]))
            .to_string()
            .contains("`mem-min`"),
    );
}

#[test]
fn static_memory_is_refused_by_name() {
    let e = err(&chosen(vec![
        dom("d").prop("xen,static-mem", [0, 0x3000_0000, 0, 0x2000_0000]),
    ]));
    assert!(
        matches!(&e, E::Unsupported { node, property: "xen,static-mem", .. } if node == "/chosen/d"),
        "{e:?}"
    );
}

#[test]
fn capability_rules() {
    let e = err(&chosen(vec![dom("d").prop("capabilities", 0x4u32)]));
    assert!(
        matches!(&e, E::UnsupportedCapability { node, capability: "XENSTORE (0x4)", .. } if node == "/chosen/d"),
        "{e:?}"
    );
    for (caps, name) in [(0x1u32, "CONTROL (0x1)"), (0x2, "HARDWARE (0x2)")] {
        let e = err(&chosen(vec![
            dom("a").prop("capabilities", 0x3u32),
            dom("b").prop("capabilities", caps),
        ]));
        assert!(
            matches!(&e, E::DuplicateCapability { capability, first, second }
                if *capability == name && first == "/chosen/a" && second == "/chosen/b"),
            "{e:?}"
        );
    }
    // One of each, on different domains, is fine.
    let info = parse(&chosen(vec![
        dom("a").prop("capabilities", 0x1u32),
        dom("b").prop("capabilities", 0x2u32),
    ]))
    .unwrap();
    assert_eq!(info.domains[0].capabilities.bits(), 1);
    assert_eq!(info.domains[1].capabilities.bits(), 2);
}

#[test]
fn per_domain_boot_settings() {
    let e = err(&chosen(vec![
        dom("d").prop("pvh,boot-protocol", "multiboot"),
    ]));
    assert!(
        matches!(&e, E::InvalidString { node, property: "pvh,boot-protocol", value, .. }
            if node == "/chosen/d" && value == "multiboot"),
        "{e:?}"
    );
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("pvh,subarch", "mips")])),
        E::InvalidString {
            property: "pvh,subarch",
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("pvh,acpi", 2u32)])),
        E::InvalidValue {
            property: "pvh,acpi",
            value: 2,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![dom("d").prop("pvh,acpi", [0u32, 1])])),
        E::WrongLength {
            property: "pvh,acpi",
            len: 8,
            ..
        }
    ));
    assert!(matches!(
        err(&chosen(vec![
            dom("d").prop("pvh,subarch", V::Raw(b"xen".to_vec()))
        ])),
        E::NotAString {
            property: "pvh,subarch",
            ..
        }
    ));
}

#[test]
fn an_xsm_policy_is_never_a_kernel_or_ramdisk() {
    let mut policy = XSM_MAGIC.to_le_bytes().to_vec();
    policy.extend_from_slice(b"flask policy body");
    let m = [lm(KERNEL, ""), lm(&policy, "")];
    let run = |tree: &[u8]| bootinfo::parse(tree, sources(&m, None));
    let rd = Node::new("rd")
        .prop("compatible", "multiboot,ramdisk")
        .prop("module-index", 1u32);
    let e = run(&chosen(vec![dom("d").child(rd)])).unwrap_err();
    assert!(
        matches!(&e, E::XsmPolicyAsDomainModule { node, kind: ModuleKind::Ramdisk } if node == "/chosen/d/rd"),
        "{e:?}"
    );
    let k = Node::new("k")
        .prop("compatible", "multiboot,kernel")
        .prop("module-index", 1u32);
    assert!(matches!(
        run(&with_kernel(k)).unwrap_err(),
        E::XsmPolicyAsDomainModule {
            kind: ModuleKind::Kernel,
            ..
        }
    ));
    // Unknown kinds: the policy is not guessed as the kernel (first) or
    // the ramdisk (second); the next unknown module is the kernel.
    let unknown = |name: &str, i: u32| {
        Node::new(name)
            .prop("compatible", "multiboot,module")
            .prop("module-index", i)
    };
    let mut d = dom("d");
    d.children = vec![unknown("a", 1), unknown("b", 0)];
    let info = run(&chosen(vec![d])).unwrap();
    let d = &info.domains[0];
    assert_eq!(info.modules[0].kind, ModuleKind::XsmPolicy);
    assert_eq!(info.modules[d.kernel].node, "/chosen/d/b");
    assert_eq!(d.ramdisk, None);
    assert_eq!(d.extra_modules, vec![0]);
}

#[test]
fn xen_module_numbering_counts_the_tree_as_module_0() {
    let m = [lm(KERNEL, ""), lm(b"second", "")];
    let xen = |tree: &[u8]| {
        bootinfo::parse(
            tree,
            sources(&m, None).numbering(ModuleNumbering::TreeIsZero),
        )
    };
    let k = |i: u32| {
        Node::new("k")
            .prop("compatible", "multiboot,kernel")
            .prop("mb-index", i)
    };
    let info = xen(&with_kernel(k(1))).unwrap();
    assert_eq!(&*info.modules[0].bytes, KERNEL);
    assert_eq!(
        info.modules[0].origin,
        bootinfo::ModuleOrigin::ModuleIndex(1)
    );
    let e = xen(&with_kernel(k(0))).unwrap_err();
    assert!(
        matches!(&e, E::ModuleIndexIsTree { node, property: "mb-index" } if node == "/chosen/d/k"),
        "{e:?}"
    );
    let e = xen(&with_kernel(k(3))).unwrap_err();
    assert!(
        matches!(
            e,
            E::ModuleIndexOutOfRange {
                index: 3,
                first: 1,
                count: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "/chosen/d/k: `mb-index` = 3, but the modules given are numbered 1 to 2 \
         (module 0 is the device tree itself)"
    );
}

#[test]
fn tree_strings_are_escaped_in_messages() {
    // A domain name and a file name carrying a terminal escape and a fake
    // `pvh:` line: printed, they stay on one line and carry no ESC.
    let hostile = "d\x1b[31m\npvh: fake";
    let mut tree = chosen(vec![dom("dXXXXXXXXXXXXXXX").without("cpus")]);
    replace(&mut tree, b"dXXXXXXXXXXXXXXX", hostile.as_bytes());
    let e = err(&tree);
    let text = e.to_string();
    assert!(matches!(&e, E::MissingProperty { node, .. } if node.ends_with(hostile)));
    assert!(!text.contains('\x1b') && !text.contains('\n'), "{text:?}");
    assert_eq!(
        text,
        "/chosen/d\\x1b[31m\\x0apvh: fake: required property `cpus` is missing"
    );
    let dir = Scratch::new();
    let k = Node::new("k")
        .prop("compatible", "multiboot,kernel")
        .prop("xen,uefi-binary", "a\x07\rb");
    let m = mods();
    let e = bootinfo::parse(&with_kernel(k), sources(&m, Some(&dir.0))).unwrap_err();
    let text = e.to_string();
    assert!(!text.bytes().any(|b| b < 0x20), "{text:?}");
    assert!(text.contains("a\\x07\\x0db"), "{text}");
}

/// Replaces `from` (same length as `to`) in a blob: node names vm-fdt
/// would not write.
fn replace(blob: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = blob
        .windows(from.len())
        .position(|w| w == from)
        .expect("placeholder in the blob");
    blob[at..at + to.len()].copy_from_slice(to);
}

#[test]
fn too_many_domains_for_the_domid_space() {
    // Ids 1 to 0x7fef can be allocated: 0x7fef domains without a domid
    // fit; one more does not. With domid 5 taken explicitly, one fewer.
    let n = |count: usize, explicit: Option<u32>| {
        let mut doms: Vec<Node> = (0..count)
            .map(|i| {
                dom(&format!("d{i}"))
                    .without("memory")
                    .prop("memory", [0, 0])
            })
            .collect();
        if let Some(id) = explicit {
            doms.push(
                dom("x")
                    .prop("domid", id)
                    .without("memory")
                    .prop("memory", [0, 0]),
            );
        }
        chosen(doms)
    };
    let m = mods();
    let run = |tree: &[u8]| bootinfo::parse(tree, sources(&m, None));
    let info = run(&n(0x7fef, None)).unwrap();
    assert_eq!(info.domains.last().unwrap().domid, 0x7fef);
    let e = run(&n(0x7ff0, None)).unwrap_err();
    assert!(
        matches!(
            e,
            E::TooManyDomains {
                count: 0x7ff0,
                free: 0x7fef
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "32752 domains have no `domid`, but only 32751 domain ids are free \
         (ids are allocated from 1 to 0x7fef)"
    );
    let e = run(&n(0x7fef, Some(5))).unwrap_err();
    assert!(
        matches!(
            e,
            E::TooManyDomains {
                count: 0x7fef,
                free: 0x7fee
            }
        ),
        "{e:?}"
    );
}
