//! Cost of the start_info → zero-page translation.
//!
//! A version-1 start_info with a command line, one initrd module and an
//! unsorted memory map of 128 or 1000 entries (a realistic mix of RAM,
//! reserved, ACPI, NVS, unusable, persistent memory and Xen OEM ranges) is
//! written once with `write_start_info` into a `SliceMemory`. The benchmark
//! `zeropage/translate/N` measures `translate` into a preallocated e820 scratch and
//! `BootParams` (what the guest stub does); `zeropage/read_and_translate/N` adds the
//! validating `StartInfoView::read` in front of it.
//!
//! Goal: under 2 µs for 128 entries.
//!
//! Run: `cargo bench -p pvh-entry --bench translate -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pvh_entry::bootparams::{BootParams, E820Entry, E820Type};
use pvh_entry::zeropage::e820_scratch_len;
use pvh_entry::{
    MemmapEntry, MemmapType, ModuleSpec, Placement, SliceMemory, StartInfoSpec, StartInfoView,
    TranslateOptions, translate, write_start_info,
};
use std::hint::black_box;

/// Where the staged memory starts.
const BASE: u64 = 0x10_0000;
/// The initrd module's contents (inside the staged memory, so the reader's
/// range check passes).
const INITRD: u64 = BASE + 0x1_0000;
const INITRD_SIZE: u64 = 0x1000;
/// Size of the staged memory: the start_info block fits below the initrd.
const MEM_SIZE: usize = 0x1_2000;

/// A deterministic xorshift generator, so every run measures the same map.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` non-overlapping ranges covering low memory and up, typed like a
/// firmware map (mostly RAM, the rest reserved, ACPI, NVS, unusable, PMEM,
/// disabled and OEM), then shuffled.
fn memmap(n: usize) -> Vec<MemmapEntry> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut at = 0u64;
    let mut map: Vec<MemmapEntry> = (0..n)
        .map(|i| {
            let type_ = match rng.next() % 16 {
                0..=8 => MemmapType::RAM,
                9..=11 => MemmapType::RESERVED,
                12 => MemmapType::ACPI,
                13 => MemmapType::NVS,
                14 => match i % 3 {
                    0 => MemmapType::UNUSABLE,
                    1 => MemmapType::PMEM,
                    _ => MemmapType::DISABLED,
                },
                _ => MemmapType(0xf000_0001 + (rng.next() % 4) as u32),
            };
            let size = ((rng.next() % 4096) + 1) * 0x1000;
            let entry = MemmapEntry::new(at, size, type_);
            // A gap now and then, as real maps have.
            at += size + (rng.next() % 2) * 0x1000;
            entry
        })
        .collect();
    for i in (1..map.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        map.swap(i, j);
    }
    map
}

/// Staged memory holding the start_info for a map of `n` entries.
fn staged(n: usize) -> SliceMemory<Vec<u8>> {
    let map = memmap(n);
    let modules = [ModuleSpec::new(INITRD, INITRD_SIZE).cmdline(Some(b"initrd"))];
    let spec = StartInfoSpec::new(1)
        .cmdline(Some(
            b"console=ttyS0 earlyprintk=serial root=/dev/vda rw quiet",
        ))
        .rsdp_paddr(0xe_0000)
        .modules(&modules)
        .memmap(&map);
    let mut mem = SliceMemory::new(BASE, vec![0u8; MEM_SIZE]);
    let (placement, size) = Placement::packed(BASE, &spec).expect("placement");
    assert!(
        BASE + size <= INITRD,
        "start_info block runs into the initrd"
    );
    write_start_info(&mut mem, &spec, &placement).expect("write_start_info");
    mem
}

fn bench_translate(c: &mut Criterion) {
    let mut group = c.benchmark_group("zeropage");
    for n in [128usize, 1000] {
        let mem = staged(n);
        let info = StartInfoView::read(&mem, BASE).expect("valid start_info");
        let options = TranslateOptions::default();
        let mut scratch = vec![E820Entry::new(0, 0, E820Type(0)); e820_scratch_len(n)];
        let mut bp = Box::new(BootParams::zeroed());
        // Sanity, outside the measurement: every entry made it.
        let t = translate(&info, &options, &mut scratch, &mut bp).expect("translate");
        assert!(t.e820_total >= n, "{} of {n} entries", t.e820_total);

        group.bench_with_input(BenchmarkId::new("translate", n), &n, |b, _| {
            b.iter(|| {
                translate(black_box(&info), black_box(&options), &mut scratch, &mut bp).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("read_and_translate", n), &n, |b, _| {
            b.iter(|| {
                let info = StartInfoView::read(black_box(&mem), BASE).unwrap();
                translate(&info, black_box(&options), &mut scratch, &mut bp).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_translate);
criterion_main!(benches);
