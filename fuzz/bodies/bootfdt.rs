//! Boot-domain device trees (dom0less / hyperlaunch) from arbitrary bytes:
//! `Ok` or a typed error, never a panic; an accepted tree is coherent
//! (ids, kinds, memory chosen within mem-min..memory and the host limit,
//! capabilities, headroom of `reg` regions, XSM policies never a kernel or
//! ramdisk), and the whole-tree check (`LaunchPlan`, what `pvh launch
//! --plan` runs) gives a plan or a typed error too. Every error prints as
//! one line of printable text.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use std::collections::HashSet;

use pvh_bootdomains::{
    self as bootinfo, BootInfoError, BootSources, Capabilities, DomainBuilder, LaunchPlan,
    LoaderModule, ModuleKind, ModuleNumbering, ModuleOrigin, XSM_MAGIC, is_xsm_policy,
};

/// A minimal PVH ELF64 (one 16-byte PT_LOAD at 1 MiB, a `PHYS32_ENTRY`
/// note), so the whole-tree check can succeed without linking a guest
/// program: a library's fuzz target depends on the library alone.
fn pvh_kernel() -> Vec<u8> {
    const LOAD: u64 = 0x10_0000;
    const PHDRS: u64 = 64;
    const NOTE: u64 = PHDRS + 2 * 56;
    const NOTE_LEN: u64 = 12 + 4 + 4;
    const CODE: u64 = NOTE + NOTE_LEN;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    e.extend_from_slice(&[0; 8]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&LOAD.to_le_bytes()); // e_entry
    e.extend_from_slice(&PHDRS.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, 2, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    let phdr = |e: &mut Vec<u8>, kind: u32, flags: u32, off: u64, addr: u64, len: u64| {
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        for v in [off, addr, addr, len, len, if kind == 1 { 16 } else { 4 }] {
            e.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(&mut e, 1, 5, CODE, LOAD, 16); // PT_LOAD, R+X
    phdr(&mut e, 4, 4, NOTE, 0, NOTE_LEN); // PT_NOTE
    for v in [4u32, 4, 18] {
        // namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(b"Xen\0");
    e.extend_from_slice(&(LOAD as u32).to_le_bytes());
    e.extend_from_slice(&[0xf4; 16]); // hlt
    e
}

fn printable(text: &str) -> bool {
    !text.bytes().any(|b| b < 0x20 || b == 0x7f)
}

fn check_error(e: &BootInfoError) {
    if let Some(node) = e.node() {
        assert!(node == "/" || node == "/chosen" || node.starts_with("/chosen/"));
    }
    assert!(printable(&e.to_string()));
}

/// One input.
pub fn run(data: &[u8]) {
    let mut policy = XSM_MAGIC.to_le_bytes().to_vec();
    policy.extend_from_slice(b"policy");
    // Loader modules a tree may refer to by index or by address: a real
    // PVH kernel, a gzip stream, an XSM policy.
    let modules = [
        LoaderModule::new(pvh_kernel().into()).addr(Some(0x10_0000)),
        LoaderModule::new((&[0x1f, 0x8b, 8, 0, 0, 0, 1, 0][..]).into()).cmdline("initrd"),
        LoaderModule::new((&policy[..]).into()).addr(Some(0x20_0000)),
    ];
    // The first byte picks the numbering and the host limit; the rest is
    // the tree (a seed is a compiled tree behind one byte).
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let (numbering, limit) = match pick & 3 {
        0 => (ModuleNumbering::TreeIsZero, 1 << 30),
        1 => (ModuleNumbering::FromZero, 48 << 20),
        _ => (ModuleNumbering::FromZero, 1 << 30),
    };
    let sources = BootSources::default()
        .modules(&modules)
        .numbering(numbering)
        .host_memory_limit(limit);
    let info = match bootinfo::parse(data, sources) {
        Ok(info) => info,
        Err(e) => return check_error(&e),
    };
    let mut ids = HashSet::new();
    let mut total = 0u64;
    let (mut control, mut hardware) = (0, 0);
    for d in &info.domains {
        assert!(ids.insert(d.domid));
        let kernel = &info.modules[d.kernel];
        assert_eq!(kernel.kind, ModuleKind::Kernel);
        assert!(!is_xsm_policy(&kernel.bytes));
        if let Some(r) = d.ramdisk {
            assert!(!is_xsm_policy(&info.modules[r].bytes));
        }
        assert!(d.mem_min <= d.memory && d.memory <= d.memory_asked && d.memory_asked <= d.mem_max);
        assert!((1..=32).contains(&d.vcpus));
        assert!(!d.capabilities.contains(Capabilities::XENSTORE));
        control += usize::from(d.capabilities.contains(Capabilities::CONTROL));
        hardware += usize::from(d.capabilities.contains(Capabilities::HARDWARE));
        total += d.memory;
    }
    assert!(control <= 1 && hardware <= 1);
    assert!(total <= info.host_memory_limit);
    for m in &info.modules {
        if let ModuleOrigin::Reg { size, .. } = m.origin {
            assert!(m.headroom >= size - m.bytes.len() as u64);
        }
    }
    match LaunchPlan::new(&info, &DomainBuilder::new()) {
        Ok(plan) => assert!(printable(&plan.to_string().replace('\n', " "))),
        Err(e) => assert!(printable(&e.to_string())),
    }
}
