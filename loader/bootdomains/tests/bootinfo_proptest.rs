//! Hostile trees: generated with random, missing and malformed properties,
//! and valid blobs mutated or truncated. The parser must return `Ok` or a
//! typed error, never panic; when it accepts, the result must be coherent.

mod bootinfo_util;

use std::collections::HashSet;

use bootinfo_util::*;
use proptest::prelude::*;
use pvh_bootdomains::{
    self as bootinfo, BootInfo, BootInfoError, Capabilities, LoaderModule, ModuleKind,
    ModuleOrigin, XSM_MAGIC, is_xsm_policy,
};

/// Loader modules for the generated trees: two unplaced, two placed, and
/// an XSM policy (placed).
fn loader_modules() -> Vec<LoaderModule> {
    let mut policy = XSM_MAGIC.to_le_bytes().to_vec();
    policy.extend_from_slice(b"policy");
    vec![
        lm(b"\x7fELF zero", ""),
        lm(&[0x1f, 0x8b, 8, 0, 1, 2, 3, 4], "m1 args"),
        lm_at(&[7u8; 16], 0x10_0000, ""),
        lm_at(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2], 0x20_0000, "xz"),
        lm_at(&policy, 0x30_0000, ""),
    ]
}

/// Values a property may take: the right shape, the wrong length, junk.
fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        (0u32..8).prop_map(V::from),
        any::<u32>().prop_map(V::from),
        (0u32..4, 0u32..0x40000).prop_map(|(h, l)| V::from([h, l])),
        any::<[u32; 2]>().prop_map(V::from),
        prop_oneof![
            Just([0u32, 0x10_0000, 16]),
            Just([0, 0x20_0000, 8]),
            any::<[u32; 3]>()
        ]
        .prop_map(V::from),
        Just([0u32, 0x10_0000, 0, 16]).prop_map(V::from),
        "[a-z.=/ ]{0,12}".prop_map(V::Str),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(V::Raw),
    ]
}

const DOMAIN_PROPS: &[&str] = &[
    "domid",
    "mode",
    "capabilities",
    "memory",
    "mem-min",
    "mem-max",
    "cpus",
    "#address-cells",
    "#size-cells",
    "xen,static-mem",
    "pvh,boot-protocol",
    "pvh,subarch",
    "pvh,acpi",
];
const MODULE_PROPS: &[&str] = &[
    "module-index",
    "mb-index",
    "reg",
    "module-addr",
    "xen,uefi-binary",
    "bootargs",
];
const MODULE_COMPAT: &[&str] = &[
    "multiboot,kernel",
    "multiboot,ramdisk",
    "multiboot,device-tree",
    "multiboot,module",
    "module,kernel",
    "module,ramdisk",
    "module,microcode",
    "xen,linux-zimage",
    "xen,linux-initrd",
    "xen,multiboot-module",
    "multiboot,xsm-policy",
    "arm,pl011",
];

/// Properties from `names`: required ones (`memory`, `cpus`) almost
/// always, optional ones sometimes; a well-formed value most of the time
/// (so that deep paths are reached), a random one otherwise.
fn props(names: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, V)>> {
    let each: Vec<_> = names
        .iter()
        .map(|&n| {
            let good = match n {
                "memory" => (0u32..0x8000).prop_map(|l| V::from([0, l])).boxed(),
                "mem-min" => (0u32..0x4000).prop_map(|l| V::from([0, l])).boxed(),
                "mem-max" => (0x8000u32..0x10000).prop_map(|l| V::from([0, l])).boxed(),
                "cpus" => prop_oneof![12 => 1u32..4, 1 => 30u32..35]
                    .prop_map(V::from)
                    .boxed(),
                "module-index" | "mb-index" => (0u32..5).prop_map(V::from).boxed(),
                "domid" => (0u32..6).prop_map(V::from).boxed(),
                "mode" => prop_oneof![6 => Just(0u32), 2 => Just(4), 1 => 0u32..16]
                    .prop_map(V::from)
                    .boxed(),
                "capabilities" => prop_oneof![8 => 0u32..4, 1 => 0u32..16]
                    .prop_map(V::from)
                    .boxed(),
                "pvh,boot-protocol" => {
                    prop_oneof![4 => Just("pvh"), 4 => Just("linux"), 4 => Just("pvh-unpack"), 1 => Just("elf")]
                        .prop_map(V::from)
                        .boxed()
                }
                "pvh,subarch" => prop_oneof![6 => Just("pc"), 6 => Just("xen"), 1 => Just("arm")]
                    .prop_map(V::from)
                    .boxed(),
                "pvh,acpi" => prop_oneof![12 => 0u32..2, 1 => Just(2u32)].prop_map(V::from).boxed(),
                "#address-cells" | "#size-cells" => (1u32..3).prop_map(V::from).boxed(),
                "xen,uefi-binary" => prop_oneof![Just("vmlinux"), Just("missing"), Just("../x")]
                    .prop_map(V::from)
                    .boxed(),
                "bootargs" => "[a-z=]{0,8}".prop_map(V::Str).boxed(),
                _ => value().boxed(),
            };
            let presence = match n {
                "memory" | "cpus" => 0.97,
                "xen,static-mem" => 0.03,
                _ => 0.2,
            };
            prop::option::weighted(presence, prop_oneof![12 => good, 1 => value()])
                .prop_map(move |v| v.map(|v| (n.to_owned(), v)))
        })
        .collect();
    each.prop_map(|v| v.into_iter().flatten().collect())
}

/// One location property (occasionally none or two).
fn location() -> impl Strategy<Value = Vec<(String, V)>> {
    let one = prop_oneof![
        (0u32..6).prop_map(|i| vec![("module-index".to_owned(), V::from(i))]),
        (0u32..6).prop_map(|i| vec![("mb-index".to_owned(), V::from(i))]),
        (0u32..4).prop_map(|i| vec![("module-index".to_owned(), V::from(i))]),
        (
            prop_oneof![Just("reg"), Just("module-addr")],
            prop_oneof![
                Just([0u32, 0x10_0000, 16]),
                Just([0, 0x10_0000, 0x1_0000]),
                Just([0, 0x20_0000, 8]),
                Just([0, 0x20_0000, 4]),
                Just([0, 0x30_0000, 10]),
                Just([0, 0x40_0000, 8])
            ]
        )
            .prop_map(|(p, r)| vec![(p.to_owned(), V::from(r))]),
        prop_oneof![6 => Just("vmlinux"), 1 => Just("missing"), 1 => Just("../x")]
            .prop_map(|f| vec![("xen,uefi-binary".to_owned(), V::from(f))]),
    ];
    prop_oneof![
        40 => one,
        1 => Just(vec![]),
        1 => props(MODULE_PROPS),
    ]
}

fn module() -> impl Strategy<Value = Node> {
    (
        prop::sample::subsequence(MODULE_COMPAT, 1..3),
        location(),
        prop::option::weighted(0.3, "[a-z =]{0,10}"),
        0u32..100,
    )
        .prop_map(|(compat, props, bootargs, n)| {
            let mut m = Node::new(&format!("module@{n}"));
            if !compat.is_empty() {
                m = m.prop(
                    "compatible",
                    V::Strs(compat.iter().map(|s| (*s).to_owned()).collect()),
                );
            }
            m.props.extend(props);
            if let Some(b) = bootargs {
                m = m.prop("bootargs", b.as_str());
            }
            m
        })
}

fn domain() -> impl Strategy<Value = Node> {
    (
        prop::bool::weighted(0.95),
        props(DOMAIN_PROPS),
        prop::collection::vec(module(), 0..3),
        prop::option::weighted(
            0.9,
            (
                prop::sample::select(
                    &[
                        "multiboot,kernel",
                        "module,kernel",
                        "xen,linux-zimage",
                        "multiboot,module",
                    ][..],
                ),
                location(),
            ),
        ),
        0u32..100,
    )
        .prop_map(|(is_domain, props, mut modules, kernel, n)| {
            if let Some((compat, loc)) = kernel {
                let mut k = Node::new("kernel").prop("compatible", compat);
                k.props.extend(loc);
                modules.insert(0, k);
            }
            let mut d = Node::new(&format!("dom{n}"));
            if is_domain {
                d = d.prop("compatible", "xen,domain");
            }
            d.props.extend(props);
            d.children = modules;
            d
        })
}

fn tree() -> impl Strategy<Value = Vec<u8>> {
    let doms = |n: std::ops::Range<usize>| prop::collection::vec(domain(), n);
    let styles = prop_oneof![
        doms(1..4).prop_map(|d| (d, None)),
        doms(1..4).prop_map(|h| (vec![], Some(h))),
        (doms(0..3), doms(1..3)).prop_map(|(d, h)| (d, Some(h))),
    ];
    // Cell counts on /chosen and the hypervisor node, inherited by domains
    // that do not set their own.
    let cells = prop::option::weighted(0.3, (1u32..3, 0u32..3));
    (styles, cells.clone(), cells).prop_map(|((dom0less, hyper), chosen_cells, hyper_cells)| {
        let with_cells = |mut n: Node, c: Option<(u32, u32)>| {
            if let Some((a, s)) = c {
                n = n.prop("#address-cells", a).prop("#size-cells", s);
            }
            n
        };
        let mut children = dom0less;
        if let Some(hyper) = hyper {
            let mut h = with_cells(
                Node::new("hypervisor").prop("compatible", "hypervisor,xen"),
                hyper_cells,
            );
            h.children = hyper;
            children.push(h);
        }
        let mut c = with_cells(Node::new("chosen"), chosen_cells);
        c.children = children;
        blob(vec![c])
    })
}

/// What an accepted `BootInfo` must satisfy.
fn check_coherent(info: &BootInfo) {
    let mut ids = HashSet::new();
    let mut total = 0u64;
    let (mut control, mut hardware) = (0, 0);
    assert!(!info.domains.is_empty());
    for d in &info.domains {
        assert!(ids.insert(d.domid), "domid {} twice", d.domid);
        assert!(d.domid < 0x7ff0);
        assert!(
            d.node.ends_with(&format!("/{}", d.name)),
            "{} {}",
            d.node,
            d.name
        );
        let kernel = &info.modules[d.kernel];
        assert_eq!(kernel.kind, ModuleKind::Kernel);
        assert!(
            !is_xsm_policy(&kernel.bytes),
            "an XSM policy as {}'s kernel",
            d.node
        );
        if let Some(r) = d.ramdisk {
            assert_eq!(info.modules[r].kind, ModuleKind::Ramdisk);
            assert!(!is_xsm_policy(&info.modules[r].bytes));
        }
        // Memory: within min..max, never more than asked.
        assert!(d.mem_min <= d.memory && d.memory <= d.memory_asked && d.memory_asked <= d.mem_max);
        assert!((1..=32).contains(&d.vcpus));
        assert_eq!(d.cmdline, info.modules[d.kernel].cmdline);
        assert!(!d.capabilities.contains(Capabilities::XENSTORE));
        control += usize::from(d.capabilities.contains(Capabilities::CONTROL));
        hardware += usize::from(d.capabilities.contains(Capabilities::HARDWARE));
        total += d.memory;
    }
    assert!(control <= 1 && hardware <= 1);
    assert!(total <= info.host_memory_limit);
    for m in &info.modules {
        // A `reg` region larger than the module: the rest is headroom.
        if let ModuleOrigin::Reg { size, .. } = m.origin {
            assert!(size >= m.bytes.len() as u64);
            assert!(m.headroom >= size - m.bytes.len() as u64);
        }
        if is_xsm_policy(&m.bytes) {
            assert!(!matches!(m.kind, ModuleKind::Kernel | ModuleKind::Ramdisk));
        }
    }
}

/// What a rejection must satisfy: an error about a node names a node of
/// the tree, and the property named is one of the binding's.
fn check_error(e: &BootInfoError) {
    if let Some(node) = e.node() {
        assert!(
            node == "/" || node == "/chosen" || node.starts_with("/chosen/"),
            "{e:?}"
        );
    }
    if let Some(p) = e.property() {
        assert!(
            DOMAIN_PROPS.contains(&p) || MODULE_PROPS.contains(&p) || p == "compatible",
            "{e:?}"
        );
    }
    // Printed, every error is one line of printable text.
    let text = e.to_string();
    assert!(!text.bytes().any(|b| b < 0x20 || b == 0x7f), "{text:?}");
}

/// Parses with a 1 GiB host and with a 48 MiB one (where domains get
/// lowered toward their `mem-min`).
fn parse_any(blob: &[u8], files: &Scratch) -> Result<BootInfo, BootInfoError> {
    let mods = loader_modules();
    let small = bootinfo::parse(
        blob,
        sources(&mods, Some(&files.0)).host_memory_limit(48 << 20),
    );
    match &small {
        Ok(info) => check_coherent(info),
        Err(e) => check_error(e),
    }
    bootinfo::parse(blob, sources(&mods, Some(&files.0)))
}

fn files() -> Scratch {
    let s = Scratch::new();
    s.file("vmlinux", b"\x7fELF file");
    s
}

/// `PROPTEST_CASES` if set (for long runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn generated_trees_give_ok_or_a_typed_error(blob in tree()) {
        let files = files();
        match parse_any(&blob, &files) {
            Ok(info) => check_coherent(&info),
            Err(e) => check_error(&e),
        }
    }
}

/// Valid blobs to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let k = |idx: u32| {
        Node::new("kernel")
            .prop("compatible", ["multiboot,kernel", "multiboot,module"])
            .prop("module-index", idx)
            .prop("bootargs", "console=ttyS0")
    };
    let d = |name: &str| {
        Node::new(name)
            .prop("compatible", "xen,domain")
            .prop("#address-cells", 2u32)
            .prop("#size-cells", 1u32)
            .prop("memory", [0, 0x4000])
            .prop("cpus", 2u32)
            .child(k(0))
            .child(
                Node::new("rd")
                    .prop("compatible", ["multiboot,ramdisk", "multiboot,module"])
                    .prop("reg", [0, 0x10_0000, 16]),
            )
    };
    vec![
        chosen(vec![d("a"), d("b")]),
        hyperlaunch(vec![d("a").prop("domid", 3u32).prop("mode", 0u32), d("b")]),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Set one byte.
    Byte(usize, u8),
    /// Overwrite one 32-bit header field.
    Header(usize, u32),
    /// Overwrite one aligned word of the structure block (tokens, lengths,
    /// name offsets).
    Word(usize, u32),
    /// Cut the blob (and set totalsize to the new length so the cut lies
    /// inside the blocks, not just before the header check).
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        (
            0usize..10,
            prop_oneof![any::<u32>(), 0u32..0x400, Just(u32::MAX), Just(0x8000_0000)]
        )
            .prop_map(|(f, v)| Mutation::Header(f, v)),
        (
            any::<usize>(),
            prop_oneof![1u32..=9, any::<u32>(), 0u32..0x100, Just(u32::MAX)]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(blob: &mut Vec<u8>, m: &Mutation) {
    let len = blob.len();
    match *m {
        Mutation::Byte(i, b) => blob[i % len] = b,
        Mutation::Header(f, v) => blob[f * 4..f * 4 + 4].copy_from_slice(&v.to_be_bytes()),
        Mutation::Word(i, v) => {
            // The structure block's offset, unless an earlier mutation
            // broke it; then any word of the blob.
            let off = u32::from_be_bytes(blob[8..12].try_into().unwrap()) as usize;
            let off = if off + 4 <= len { off } else { 0 };
            let words = (len - off) / 4;
            let at = off + (i % words) * 4;
            blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Truncate(n) => {
            let n = n % len;
            blob.truncate(n);
            if n >= 8 {
                blob[4..8].copy_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    #[test]
    fn mutated_and_truncated_blobs_never_panic(
        seed in 0usize..2,
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut blob = seeds()[seed].clone();
        for m in &muts {
            if blob.len() < 40 {
                break;
            }
            apply(&mut blob, m);
        }
        let files = files();
        if let Ok(info) = parse_any(&blob, &files) {
            check_coherent(&info);
        }
    }

    #[test]
    fn random_bytes_behind_a_plausible_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        fields in any::<[u32; 8]>(),
    ) {
        let total = 40 + body.len();
        let mut blob = Vec::with_capacity(total);
        blob.extend_from_slice(&0xd00d_feedu32.to_be_bytes());
        blob.extend_from_slice(&(total as u32).to_be_bytes());
        // Offsets and sizes small enough to land inside the blob often.
        for (i, f) in fields.iter().enumerate() {
            let v = match i {
                3 => 17,
                4 => 16,
                _ => f % (total as u32 + 8),
            };
            blob.extend_from_slice(&v.to_be_bytes());
        }
        blob.extend_from_slice(&body);
        let files = files();
        let _ = parse_any(&blob, &files);
    }
}

#[test]
fn seeds_are_valid() {
    let files = files();
    for s in seeds() {
        let info = parse_any(&s, &files).unwrap();
        assert_eq!(info.domains.len(), 2);
        check_coherent(&info);
    }
}

/// The generator is only useful if it reaches both outcomes: some trees
/// accepted (deep paths: modules located, domains built), many rejected.
#[test]
fn generated_trees_reach_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let files = files();
    let strategy = tree();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..1000 {
        let blob = strategy.new_tree(&mut runner).unwrap().current();
        match parse_any(&blob, &files) {
            Ok(_) => ok += 1,
            Err(e) => {
                err += 1;
                if std::env::var_os("BOOTINFO_SHOW_ERRORS").is_some() {
                    eprintln!("{e}");
                }
            }
        }
    }
    eprintln!("generated trees: {ok} accepted, {err} rejected");
    assert!(ok >= 10, "only {ok} of 1000 generated trees accepted");
    assert!(err >= 10, "only {err} of 1000 generated trees rejected");
}
