//! The stub's handling of a hostile start_info, on the host: the stub reads
//! its start_info with `StartInfoView::read` and translates it with
//! `translate` into a scratch of `e820_scratch_len(256)` entries, printing
//! `stub: error: start_info: <error>` (or `zero page: <error>`) on failure.
//! No PVH loader at hand writes absurd counts, so these start_infos are
//! built byte by byte here (offsets from Xen's start_info.h) and read
//! through `SliceMemory`, the same code path the stub runs over
//! `IdentityMapped`.

use pvh_bootparams::{BootParams, E820Entry, E820Type};
use pvh_entry::linux::{BootRequest, KernelNeeds, LinuxBootError, plan_boot};
use pvh_entry::zeropage::e820_scratch_len;
use pvh_entry::{
    ReadError, SliceMemory, StartInfoView, TranslateError, TranslateOptions, translate,
};

const MEM: usize = 64 * 1024;
const AT: u64 = 0x1000;
/// The stub's memory-map capacity (guests/stub/src/main.rs `MAX_MAP`).
const STUB_MAX_MAP: usize = 256;

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
fn more_memmap_entries_than_the_stub_holds_is_a_translate_error() {
    // 300 valid entries: the reader accepts them (its limit is higher);
    // the stub's scratch holds 256 + 1, and the translation says so.
    let n = 300u32;
    let mut m = memory(&Raw {
        memmap_entries: n,
        ..raw()
    });
    for i in 0..n as usize {
        let at = 0x2000 + i * 24;
        m[at..at + 8].copy_from_slice(&((i as u64) << 20).to_le_bytes());
        m[at + 8..at + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        m[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
    }
    let mem = SliceMemory::new(0, &m[..]);
    let view = StartInfoView::read(&mem, AT).unwrap();
    let mut scratch = vec![E820Entry::new(0, 0, E820Type::RAM); e820_scratch_len(STUB_MAX_MAP)];
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
    let m = memory(&Raw {
        version: 0,
        memmap: 0,
        memmap_entries: 0,
        ..raw()
    });
    let mem = SliceMemory::new(0, &m[..]);
    let view = StartInfoView::read(&mem, AT).unwrap();
    let mut scratch = vec![E820Entry::new(0, 0, E820Type::RAM); 8];
    let mut bp = BootParams::zeroed();
    let e = translate(&view, &TranslateOptions::default(), &mut scratch, &mut bp).unwrap_err();
    assert_eq!(e, TranslateError::NoMemoryMap { version: 0 });
}

#[test]
fn too_many_ranges_in_use_is_an_error_not_an_overflow() {
    let needs = KernelNeeds {
        init_size: 0x100_0000,
        code_size: 0x80_0000,
        align: 0x20_0000,
        pref_address: 0x100_0000,
        relocatable: true,
        above_4g: false,
    };
    let req = BootRequest {
        needs,
        code: (0x40_0000, 0xc0_0000),
        zero_page_size: 0x1000,
    };
    let e820 = [E820Entry::new(0x10_0000, 0x1000_0000, E820Type::RAM)];
    let avoid = vec![(0u64, 1u64); 300];
    let mut scratch = vec![(0, 0); 258];
    assert_eq!(
        plan_boot(&req, &e820, &avoid, &mut scratch),
        Err(LinuxBootError::TooManyRanges {
            ranges: 302,
            capacity: 258
        })
    );
}
