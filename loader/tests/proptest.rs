//! Property tests: arbitrary, mutated and structurally absurd ELF and
//! bzImage inputs always give a typed result, never a panic, and never a
//! write outside guest RAM (checked with guard regions: the ISA window and
//! backing memory past the RAM the planner is told about, both filled with
//! a pattern and compared afterwards).

mod common;

use common::*;
use proptest::prelude::*;
use pvh_loader::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 4 << 20;
const GUARD: usize = 256 << 10;
const PATTERN: u8 = 0x6b;
const CASES: u32 = 5000;

thread_local! {
    /// One backing memory per test thread, reused across cases (a fresh
    /// mmap per case costs more than the case); the guards are re-armed
    /// before every case.
    static MEM: GuestMemoryMmap =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize + GUARD)]).unwrap();
}

fn arm_guards(mem: &GuestMemoryMmap) {
    mem.write_slice(&[PATTERN; 0x6_0000], GuestAddress(0xa_0000))
        .unwrap();
    mem.write_slice(&[PATTERN; GUARD], GuestAddress(RAM))
        .unwrap();
}

fn guards_intact(mem: &GuestMemoryMmap) -> bool {
    read(mem, 0xa_0000, 0x6_0000) == vec![PATTERN; 0x6_0000]
        && read(mem, RAM, GUARD) == vec![PATTERN; GUARD]
}

/// Plans and loads; on success checks every placement is in RAM. Always
/// checks the guards. Returns whether loading succeeded.
fn run(config: &BootConfig<'_>) -> Result<bool, TestCaseError> {
    MEM.with(|mem| check(mem, config))
}

fn check(mem: &GuestMemoryMmap, config: &BootConfig<'_>) -> Result<bool, TestCaseError> {
    arm_guards(mem);
    let ram = kvm_ram(RAM).unwrap();
    let ok = match plan(&ram, config) {
        Ok(p) => {
            for pl in p.placements() {
                if !matches!(pl.purpose, Purpose::Reserved(_)) {
                    prop_assert!(ram.is_usable(&pl.range()), "{:?} outside RAM", pl);
                }
            }
            prop_assert!(check_disjoint(p.placements()).is_ok());
            load(mem, &p).is_ok()
        }
        Err(_) => false,
    };
    prop_assert!(guards_intact(mem), "write outside guest RAM");
    Ok(ok)
}

fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(0x500),
        Just(0x9_f000),
        Just(0xa_0000),
        Just(0xf_f000),
        Just(0x10_0000),
        Just(RAM - 0x1000),
        Just(RAM),
        Just(0xffff_f000),
        Just(u64::MAX - 0xfff),
        0u64..RAM * 2,
        any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x2000,
        Just(RAM),
        Just(u64::MAX),
        Just(1 << 32),
        any::<u64>()
    ]
}

fn seg() -> impl Strategy<Value = Seg> {
    (
        addr(),
        prop::collection::vec(any::<u8>(), 0..64),
        size(),
        0u32..8,
        prop::option::of(size()),
        prop::option::of(size()),
    )
        .prop_map(|(paddr, data, extra, flags, filesz, offset)| Seg {
            paddr,
            memsz: (data.len() as u64).saturating_add(extra % 0x4000),
            data,
            flags,
            filesz,
            offset,
        })
        .prop_map(|mut s| {
            // Sometimes an absurd memsz outright.
            if s.flags == 7 {
                s.memsz = u64::MAX - s.paddr / 2;
            }
            s
        })
}

fn elf_spec() -> impl Strategy<Value = Elf> {
    (
        any::<bool>(),
        prop::collection::vec(seg(), 0..5),
        prop::option::of(addr()),
        any::<bool>(),
        prop::option::of((any::<u32>(), any::<u32>(), any::<u32>())),
    )
        .prop_map(|(class64, segs, entry, entry_in_first, reloc)| {
            let mut e = if class64 {
                Elf::new64(segs)
            } else {
                Elf::new32(segs)
            };
            let entry = match (entry_in_first, e.segs.first()) {
                (true, Some(s)) => s.paddr.wrapping_add(1),
                _ => entry.unwrap_or(0x10_0000),
            };
            e = if class64 {
                e.entry8(entry)
            } else {
                e.entry4(entry as u32)
            };
            if let Some((a, min, max)) = reloc {
                e = e.reloc(1 << (a % 24), min % (8 << 20), max);
            }
            e
        })
}

fn pvh(kernel: &[u8]) -> BootConfig<'_> {
    BootConfig::new(Kernel::pvh_elf(kernel)).cmdline(b"console=ttyS0")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ElfImage::parse(&bytes);
        let _ = KernelImage::parse(&bytes);
        run(&pvh(&bytes))?;
    }

    #[test]
    fn arbitrary_bytes_behind_the_elf_magic(tail in prop::collection::vec(any::<u8>(), 0..512), class in 0u8..4) {
        let mut bytes = b"\x7fELF".to_vec();
        bytes.push(class);
        bytes.push(1);
        bytes.extend(tail);
        let _ = ElfImage::parse(&bytes);
        run(&pvh(&bytes))?;
    }

    #[test]
    fn structured_elfs_are_checked_and_stay_in_ram(spec in elf_spec()) {
        let bytes = spec.build();
        run(&pvh(&bytes))?;
        let mut anywhere = pvh(&bytes);
        anywhere.kernel = anywhere.kernel.with_relocation(Relocation::Anywhere);
        run(&anywhere)?;
    }

    #[test]
    fn mutated_elfs(muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), class64 in any::<bool>()) {
        let base = if class64 {
            simple_elf().reloc(0x1000, 0x10_0000, 0xffff_ffff)
        } else {
            Elf::new32(vec![Seg::code(0x10_0000, &[0x90; 0x40]), Seg::data(0x10_1000, &[1; 8], 0x2000)])
                .entry4(0x10_0010)
                .reloc(0x1000, 0x10_0000, 0xffff_ffff)
        };
        let mut bytes = base.build();
        for (i, v) in muts {
            let n = bytes.len();
            bytes[i.index(n)] = v;
        }
        run(&pvh(&bytes))?;
    }

    #[test]
    fn modules_that_do_not_fit_are_typed_errors(sizes in prop::collection::vec(0usize..(3 << 20), 0..6), high in any::<bool>()) {
        let elf = simple_elf().build();
        let blobs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0x3c; n]).collect();
        let mut config = pvh(&elf);
        config.modules = blobs.iter().map(|b| Module::new(b).cmdline(Some(b"m")).above_4g(high).headroom(0)).collect();
        let total: usize = sizes.iter().map(|n| n.div_ceil(4096) * 4096).sum();
        let loaded = run(&config)?;
        // Fits only if the modules fit in RAM above 1 MiB.
        if total as u64 > RAM - 0x10_0000 {
            prop_assert!(!loaded);
        }
    }

    #[test]
    fn mutated_bzimages(
        muts in prop::collection::vec((0x1f1usize..0x270, any::<u64>(), 0u8..4), 0..6),
        payload_kind in 0u8..5,
        protocol in 0u8..3,
        cut in any::<prop::sample::Index>(),
    ) {
        let elf = simple_elf().build();
        let payload = match payload_kind {
            0 => with_size(gzip(&elf), elf.len()),
            1 => with_size(xz(&elf), elf.len()),
            2 => with_size(zstd(&elf), elf.len()),
            3 => { let p = with_size(xz(&elf), elf.len()); p[..cut.index(p.len())].to_vec() }
            _ => vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
        };
        let mut bytes = Bz::default()
            .init_size(0x10_0000)
            .pref_address(0x20_0000)
            .payload(payload)
            .build();
        for (off, v, width) in muts {
            let w = 1usize << width;
            let end = (off + w).min(bytes.len());
            bytes[off..end].copy_from_slice(&v.to_le_bytes()[..end - off]);
        }
        let stub = simple_elf().reloc(0x1000, 0x10_0000, 0xffff_ffff).build();
        let initrd = [7u8; 5000];
        let config = BootConfig::new(Kernel::from_protocol(
                [BootProtocol::Linux64, BootProtocol::PvhUnpack, BootProtocol::Pvh][protocol as usize],
                &bytes,
                (protocol == 2).then_some(&stub[..]),
            )).cmdline(b"quiet").modules(vec![Module::new(&initrd).cmdline(None).above_4g(false).headroom(0)]);
        run(&config)?;
    }

    #[test]
    fn arbitrary_bzimage_headers(header in prop::collection::vec(any::<u8>(), 0x80), tail in prop::collection::vec(any::<u8>(), 0..256), protocol in 0u8..2) {
        let mut bytes = Bz::default().build();
        bytes[0x1f1..0x271].copy_from_slice(&header);
        // Keep the magics so the header is parsed further, most of the time.
        if header[0] & 1 == 0 {
            bytes[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
            bytes[0x202..0x206].copy_from_slice(b"HdrS");
        }
        bytes.extend(tail);
        let config = BootConfig::new(Kernel::from_protocol(
                [BootProtocol::Linux64, BootProtocol::PvhUnpack][protocol as usize],
                &bytes,
                None,
            ));
        run(&config)?;
    }

    #[test]
    fn guest_ram_sizes(size in any::<u64>()) {
        if let Ok(ram) = kvm_ram(size) {
            let total: u64 = ram.regions().iter().map(|r| r.1).sum();
            prop_assert_eq!(total, size);
            prop_assert!(ram.regions().iter().all(|&(s, l)| s + l <= 0xc000_0000 || s >= 0x1_0000_0000));
        }
    }
}
