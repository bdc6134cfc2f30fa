//! Parse cost of boot-domain device trees for 1, 10, 100 and 1000 domains
//! (each with a kernel and a ramdisk). Linear work shows as a constant time
//! per domain; the figures are in `docs/bootdomains.md`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pvh_bootdomains::{self as bootinfo, BootSources};

#[path = "../tests/bootinfo_util/mod.rs"]
#[allow(missing_docs)]
mod util;

fn parse_cost(c: &mut Criterion) {
    let mods = util::many_domains_modules();
    let mut group = c.benchmark_group("bootinfo_parse");
    for n in [1usize, 10, 100, 1000] {
        let blob = util::many_domains(n);
        let sources = BootSources::default()
            .modules(&mods)
            .host_memory_limit(4 << 30);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &blob, |b, blob| {
            b.iter(|| bootinfo::parse(black_box(blob), sources).unwrap())
        });
    }
    group.finish();

    // The structural check alone, to show its share.
    let mut group = c.benchmark_group("bootinfo_blob_check");
    for n in [1usize, 10, 100, 1000] {
        let blob = util::many_domains(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &blob, |b, blob| {
            b.iter(|| bootinfo::blob::check(black_box(blob)).unwrap().1)
        });
    }
    group.finish();
}

criterion_group!(benches, parse_cost);
criterion_main!(benches);
