//! A canonical form of a memory map, for code that decides where things
//! go: sorted, disjoint, no empty entries, touching entries of one type
//! merged, and overlaps resolved the way Linux's e820 sanitizer does (the
//! higher type wins, so RAM, type 1, loses to anything).
//!
//! Hypervisors hand over maps that are out of order (Firecracker) or end
//! with an empty entry (qboot), and nothing in the ABI forbids overlaps or
//! RAM split across touching entries. Placement ([`crate::linux::is_free`])
//! asks "is this range inside one RAM entry and clear of every other", which
//! is only the right question on a canonical map: on a raw one, RAM split in
//! two touching entries, or listed twice, hides room that is there. The
//! kernel itself still gets the map as translated (its own sanitizer runs).

use pvh_bootparams::E820Entry;

/// The output buffer is too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the canonical memory map needs more than {capacity} entries")]
pub struct TooManyEntries {
    /// The buffer's size.
    pub capacity: usize,
}

/// Most entries [`canonical`] can produce from `n` input entries.
pub const fn canonical_len(n: usize) -> usize {
    2 * n
}

/// Writes the canonical form of `map` into `out` and returns its length.
/// `out` needs at most [`canonical_len`]`(map.len())` entries. An entry
/// that would wrap past 2^64 is cut at 2^64 - 1. O(n^2) comparisons, no
/// allocation.
pub fn canonical(map: &[E820Entry], out: &mut [E820Entry]) -> Result<usize, TooManyEntries> {
    let end = |e: &E820Entry| e.addr.saturating_add(e.size);
    let live = || map.iter().filter(|e| e.size > 0);
    let mut n = 0usize;
    let Some(mut cursor) = live().map(|e| e.addr).min() else {
        return Ok(0);
    };
    loop {
        // The next place anything starts or ends.
        let Some(next) = live()
            .flat_map(|e| [e.addr, end(e)])
            .filter(|&b| b > cursor)
            .min()
        else {
            return Ok(n);
        };
        let covering = live()
            .filter(|e| e.addr <= cursor && cursor < end(e))
            .map(|e| e.type_)
            .max();
        if let Some(t) = covering {
            let capacity = out.len();
            match out[..n].last_mut() {
                Some(last) if { last.type_ } == t && end(last) == cursor => {
                    last.size = next - last.addr;
                }
                _ => {
                    let slot = out.get_mut(n).ok_or(TooManyEntries { capacity })?;
                    *slot = E820Entry::new(cursor, next - cursor, t);
                    n += 1;
                }
            }
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use pvh_bootparams::E820Type;

    fn e(addr: u64, size: u64, t: u32) -> E820Entry {
        E820Entry::new(addr, size, E820Type(t))
    }

    fn run(map: &[E820Entry]) -> Vec<E820Entry> {
        let mut out = vec![e(0, 0, 0); canonical_len(map.len())];
        let n = canonical(map, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn firecrackers_map_comes_out_sorted() {
        // As Firecracker v1.17 lists it (docs/conformance.md).
        let fc = [
            e(0, 0x9_fc00, 1),
            e(0x9_fc00, 0x4_0400, 2),
            e(0xeec0_0000, 0x1000_0000, 2),
            e(0x10_0000, 0x7f0_0000, 1),
        ];
        assert_eq!(
            run(&fc),
            vec![
                e(0, 0x9_fc00, 1),
                e(0x9_fc00, 0x4_0400, 2),
                e(0x10_0000, 0x7f0_0000, 1),
                e(0xeec0_0000, 0x1000_0000, 2),
            ]
        );
    }

    #[test]
    fn split_and_repeated_ram_merges_and_reserved_wins() {
        // RAM split at 16 MiB, listed again in part, a reserved page inside.
        let map = [
            e(0x100_0000, 0x100_0000, 1),
            e(0x10_0000, 0xf0_0000, 1),
            e(0x80_0000, 0x100_0000, 1),
            e(0x180_0000, 0x1000, 2),
            e(0, 0, 7),
        ];
        assert_eq!(
            run(&map),
            vec![
                e(0x10_0000, 0x170_0000, 1),
                e(0x180_0000, 0x1000, 2),
                e(0x180_1000, 0x7f_f000, 1),
            ]
        );
        // qboot's trailing all-zero entry disappears.
        assert_eq!(
            run(&[e(0, 0x9_fc00, 1), e(0, 0, 0)]),
            vec![e(0, 0x9_fc00, 1)]
        );
        assert_eq!(run(&[]), vec![]);
        // A wrapping entry is cut at the top of the address space.
        assert_eq!(
            run(&[e(u64::MAX - 0xff, 0x1000, 2)]),
            vec![e(u64::MAX - 0xff, 0xff, 2)]
        );
    }

    #[test]
    fn a_small_buffer_is_an_error() {
        let map = [e(0, 0x10, 1), e(0x20, 0x10, 1)];
        let mut out = [e(0, 0, 0); 1];
        assert_eq!(
            canonical(&map, &mut out),
            Err(TooManyEntries { capacity: 1 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        // Byte by byte in a small address space: the canonical map gives
        // each byte the highest type any input entry gives it, and is
        // sorted, disjoint, without empty or mergeable neighbours.
        #[test]
        fn every_byte_keeps_its_highest_type(
            raw in proptest::collection::vec((0u64..96, 0u64..32, 1u32..6), 0..12),
        ) {
            let map: Vec<E820Entry> = raw.iter().map(|&(a, s, t)| e(a, s, t)).collect();
            let out = run(&map);
            prop_assert!(out.len() <= canonical_len(map.len()));
            for b in 0..128u64 {
                let want = map.iter()
                    .filter(|x| x.addr <= b && b < x.addr + x.size)
                    .map(|x| x.type_)
                    .max();
                let got: Vec<E820Type> = out.iter()
                    .filter(|x| x.addr <= b && b < x.addr + x.size)
                    .map(|x| x.type_)
                    .collect();
                prop_assert_eq!(got.first().copied(), want);
                prop_assert!(got.len() <= 1);
            }
            for w in out.windows(2) {
                let (a, b) = (w[0], w[1]);
                prop_assert!(a.addr + a.size <= b.addr);
                let (ta, tb) = (a.type_, b.type_);
                prop_assert!(!(a.addr + a.size == b.addr && ta == tb));
            }
            prop_assert!(out.iter().all(|x| x.size > 0));
        }
    }
}
