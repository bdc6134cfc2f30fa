//! Parse cost of boot-domain device trees for 1 to 1000 domains.

use criterion::{Criterion, criterion_group, criterion_main};

fn parse_cost(_c: &mut Criterion) {}

criterion_group!(benches, parse_cost);
criterion_main!(benches);
