//! Every bootinfo error, each from a tree that has exactly that one fault,
//! with the node path, property and values the error must carry.

mod bootinfo_util;

use bootinfo_util::*;
use pvh_hypervisor::bootinfo::{
    self, BlobError, BootInfoError as E, BootSources, LoaderModule, ModuleKind,
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
            addr: 0x2000,
            size: 4,
            ..
        })
    ));
    assert!(matches!(
        run(&with_kernel(k([0, 0x1000, 4]))),
        Err(E::RegSizeMismatch { addr: 0x1000, reg_size: 4, module_size, .. }) if module_size == KERNEL.len() as u64
    ));
    let short = Node::new("k")
        .prop("compatible", "multiboot,kernel")
        .prop("reg", [0x1000u32]);
    assert!(matches!(
        run(&with_kernel(short)),
        Err(E::WrongLength {
            property: "reg",
            len: 4,
            ..
        })
    ));
    let mut three = dom("d").prop("#address-cells", 3u32);
    three.children = vec![k([0, 0x1000, 4])];
    assert!(matches!(
        run(&chosen(vec![three])),
        Err(E::InvalidValue { node, property: "#address-cells", value: 3, .. }) if node == "/chosen/d"
    ));
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
            d().prop("memory", [0, 0x1000])
                .prop("mem-max", [0, 0x20_0000])
        ])),
        E::MemoryOverLimit {
            property: "mem-max",
            bytes: 0x8000_0000,
            ..
        }
    ));
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
}

#[test]
fn too_many_domains_for_the_domid_space() {
    // 0x7fef domains take every id from 1 to 0x7fef; one with domid 0 is
    // fine, one more without a domid is not.
    let count = 0x7ff0usize;
    let doms: Vec<Node> = (0..count)
        .map(|i| {
            dom(&format!("d{i}"))
                .without("memory")
                .prop("memory", [0, 0])
        })
        .collect();
    let tree = chosen(doms);
    let m = mods();
    let e = bootinfo::parse(
        &tree,
        BootSources {
            modules: &m,
            dir: None,
            host_memory_limit: GIB,
        },
    )
    .expect_err("rejected");
    assert!(
        matches!(
            e,
            E::TooManyDomains {
                count: 0x7ff0,
                max: 0x7ff0
            }
        ),
        "{e:?}"
    );
}
