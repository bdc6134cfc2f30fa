//! Boot-domain device trees (dom0less / hyperlaunch) from arbitrary bytes:
//! `Ok` or a typed error, never a panic; an accepted tree is coherent.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use pvh_hypervisor::bootinfo::{self, BootSources, LoaderModule, ModuleKind};

fuzz_target!(|data: &[u8]| {
    // Loader modules a tree may refer to by index or by address.
    let modules = [
        LoaderModule {
            bytes: Arc::from(&b"\x7fELF kernel"[..]),
            addr: Some(0x10_0000),
            cmdline: String::new(),
            path: None,
        },
        LoaderModule {
            bytes: Arc::from(&[0x1f, 0x8b, 8, 0, 0, 0, 1, 0][..]),
            addr: None,
            cmdline: "initrd".into(),
            path: None,
        },
    ];
    let sources = BootSources {
        modules: &modules,
        dir: None,
        host_memory_limit: 1 << 30,
        ..Default::default()
    };
    if let Ok(info) = bootinfo::parse(data, sources) {
        let mut ids = HashSet::new();
        let mut total = 0u64;
        for d in &info.domains {
            assert!(ids.insert(d.domid));
            assert_eq!(info.modules[d.kernel].kind, ModuleKind::Kernel);
            assert!(d.mem_min <= d.memory && d.memory <= d.mem_max);
            assert!(d.mem_max <= info.host_memory_limit);
            total += d.memory;
        }
        assert!(total <= info.host_memory_limit);
    }
});
