//! The stub's handling of a hostile start_info, on the host: the stub's
//! whole decision is `pvh_entry::linux::stub::plan`, which these tests run
//! over `SliceMemory` exactly as the stub runs it over identity-mapped RAM,
//! and whose error the stub prints as `stub: error: <error>`. No PVH
//! loader at hand writes absurd counts, so these start_infos are built byte
//! by byte here (offsets from Xen's start_info.h).

use pvh_bootparams::{BootParams, E820Entry, E820Type};
use pvh_entry::linux::LinuxBootError;
use pvh_entry::linux::stub::{Inputs, MAX_AVOID, MAX_MAP, Scratch, StubError, plan};
use pvh_entry::zeropage::e820_scratch_len;
use pvh_entry::{
    ReadError, SliceMemory, StartInfoView, TranslateError, TranslateOptions, translate,
};

const MEM: usize = 64 * 1024;
const AT: u64 = 0x1000;
/// Where the tests put a small bzImage module.
const KERNEL_AT: u64 = 0x8000;

/// A small bzImage the policy takes.
fn bzimage() -> Vec<u8> {
    pvh_tests::images::SynthBz::default().build()
}

/// `m` with module `i` of the module list at `modlist` set to
/// (`paddr`, `size`).
fn set_module(m: &mut [u8], modlist: u64, i: usize, paddr: u64, size: u64) {
    let at = modlist as usize + i * 32;
    m[at..at + 8].copy_from_slice(&paddr.to_le_bytes());
    m[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
}

fn stub_plan(m: &[u8]) -> Result<(), StubError> {
    let mem = SliceMemory::new(0, m);
    let inputs = Inputs::new(AT, (0x10_0000, 0x11_0000));
    let mut scratch = Box::new(Scratch::new());
    plan(&mem, &inputs, &mut scratch).map(|_| ())
}

struct Raw {
    version: u32,
    nr_modules: u32,
    modlist: u64,
    memmap: u64,
    memmap_entries: u32,
}

fn memory(raw: &Raw) -> Vec<u8> {
    let mut m = vec![0u8; MEM];
    let at = AT as usize;
    m[at..at + 4].copy_from_slice(&0x336e_c578u32.to_le_bytes());
    m[at + 4..at + 8].copy_from_slice(&raw.version.to_le_bytes());
    m[at + 12..at + 16].copy_from_slice(&raw.nr_modules.to_le_bytes());
    m[at + 16..at + 24].copy_from_slice(&raw.modlist.to_le_bytes());
    m[at + 40..at + 48].copy_from_slice(&raw.memmap.to_le_bytes());
    m[at + 48..at + 52].copy_from_slice(&raw.memmap_entries.to_le_bytes());
    m
}

fn raw() -> Raw {
    Raw {
        version: 1,
        nr_modules: 0,
        modlist: 0,
        memmap: 0x2000,
        memmap_entries: 1,
    }
}

fn read(bytes: &[u8]) -> Result<(), ReadError> {
    let mem = SliceMemory::new(0, bytes);
    StartInfoView::read(&mem, AT).map(|_| ())
}

#[test]
fn absurd_module_count_is_refused_with_the_count() {
    let m = memory(&Raw {
        nr_modules: u32::MAX,
        modlist: 0x3000,
        ..raw()
    });
    let e = read(&m).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::TooManyModules {
                count: u32::MAX,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("4294967295 modules"), "{e}");
}

#[test]
fn absurd_memmap_count_is_refused() {
    let m = memory(&Raw {
        memmap_entries: u32::MAX,
        ..raw()
    });
    let e = read(&m).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::TooManyMemmapEntries {
                count: u32::MAX,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_module_list_past_memory_is_refused() {
    let m = memory(&Raw {
        nr_modules: 3,
        modlist: (MEM - 32) as u64,
        ..raw()
    });
    assert!(matches!(
        read(&m).unwrap_err(),
        ReadError::ModuleListOutOfRange { count: 3, .. }
    ));
}

#[test]
fn a_module_of_absurd_size_is_refused() {
    let mut m = memory(&Raw {
        nr_modules: 1,
        modlist: 0x3000,
        ..raw()
    });
    // paddr 0x4000, size 2^64-1.
    m[0x3000..0x3008].copy_from_slice(&0x4000u64.to_le_bytes());
    m[0x3008..0x3010].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        read(&m).unwrap_err(),
        ReadError::ModuleOutOfRange { index: 0, .. }
    ));
}

#[test]
fn more_memmap_entries_than_the_stub_holds_is_refused() {
    // 300 valid entries: the reader accepts them (its limit is higher);
    // the stub holds 256 and says so.
    let n = 300u32;
    let mut m = memory(&Raw {
        memmap_entries: n,
        nr_modules: 1,
        modlist: 0x1800,
        memmap: 0x2000,
        ..raw()
    });
    for i in 0..n as usize {
        let at = 0x2000 + i * 24;
        m[at..at + 8].copy_from_slice(&((i as u64) << 20).to_le_bytes());
        m[at + 8..at + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        m[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
    }
    let kernel = bzimage();
    m[KERNEL_AT as usize..KERNEL_AT as usize + kernel.len()].copy_from_slice(&kernel);
    set_module(&mut m, 0x1800, 0, KERNEL_AT, kernel.len() as u64);
    let e = stub_plan(&m).unwrap_err();
    assert_eq!(
        e,
        StubError::MapTooLarge {
            count: 300,
            max: 256
        }
    );
    assert_eq!(
        e.to_string(),
        "300 memory-map entries, more than the 256 the stub handles"
    );
    // The translation itself, given the stub's scratch, refuses too.
    let mem = SliceMemory::new(0, &m[..]);
    let view = StartInfoView::read(&mem, AT).unwrap();
    let mut scratch = vec![E820Entry::new(0, 0, E820Type::RAM); e820_scratch_len(MAX_MAP)];
    let mut bp = BootParams::zeroed();
    let e = translate(&view, &TranslateOptions::default(), &mut scratch, &mut bp).unwrap_err();
    assert_eq!(
        e,
        TranslateError::ScratchTooSmall {
            needed: 301,
            available: 257
        }
    );
}

#[test]
fn a_version_0_start_info_off_xen_has_no_memory_map() {
    let mut m = memory(&Raw {
        version: 0,
        memmap: 0,
        memmap_entries: 0,
        nr_modules: 1,
        modlist: 0x1800,
    });
    let kernel = bzimage();
    m[KERNEL_AT as usize..KERNEL_AT as usize + kernel.len()].copy_from_slice(&kernel);
    set_module(&mut m, 0x1800, 0, KERNEL_AT, kernel.len() as u64);
    let e = stub_plan(&m).unwrap_err();
    assert_eq!(e, StubError::NoMemoryMap(0));
    assert_eq!(
        e.to_string(),
        "no memory map: start_info version 0 has none and this is not Xen"
    );
}

#[test]
fn too_many_ranges_in_use_is_an_error_not_an_overflow() {
    // 300 modules of one byte each (plus the kernel): more ranges than the
    // stub tracks.
    let n = 301u32;
    let mut m = memory(&Raw {
        nr_modules: n,
        modlist: 0x4000,
        ..raw()
    });
    // One RAM entry.
    m[0x2000 + 8..0x2000 + 16].copy_from_slice(&(MEM as u64).to_le_bytes());
    m[0x2000 + 16..0x2000 + 20].copy_from_slice(&1u32.to_le_bytes());
    let kernel = bzimage();
    m[KERNEL_AT as usize..KERNEL_AT as usize + kernel.len()].copy_from_slice(&kernel);
    set_module(&mut m, 0x4000, 0, KERNEL_AT, kernel.len() as u64);
    for i in 1..n as usize {
        set_module(&mut m, 0x4000, i, 0xe000 + i as u64, 1);
    }
    let e = stub_plan(&m).unwrap_err();
    assert_eq!(
        e,
        StubError::Kernel(LinuxBootError::TooManyRanges {
            ranges: MAX_AVOID + 1,
            capacity: MAX_AVOID
        })
    );
}
