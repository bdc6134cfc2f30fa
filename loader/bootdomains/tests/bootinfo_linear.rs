//! The parse is one walk: nodes visited and properties read grow exactly
//! linearly with the number of domains (counted by the parser itself; the
//! times are in `benches/bootinfo.rs`).

mod bootinfo_util;

use bootinfo_util::*;
use pvh_bootdomains::{self as bootinfo, BootSources, ParseStats, blob::BlobShape};

fn stats(n: usize) -> ParseStats {
    let mods = many_domains_modules();
    let (info, stats) = bootinfo::parse_with_stats(
        &many_domains(n),
        BootSources::default()
            .modules(&mods)
            .host_memory_limit(4 * GIB),
    )
    .unwrap();
    assert_eq!(info.domains.len(), n);
    assert_eq!(info.modules.len(), 2 * n);
    // Ids allocated from 1 in tree order.
    assert_eq!(info.domains.last().unwrap().domid as usize, n);
    stats
}

#[test]
fn work_is_linear_in_the_number_of_domains() {
    for n in [1usize, 10, 100, 1000] {
        // Per domain: the domain node and its two modules, each visited
        // once; 3 + 3 + 2 properties. Plus the root and /chosen (for their
        // cell counts).
        assert_eq!(
            stats(n),
            ParseStats {
                blob: BlobShape {
                    nodes: 2 + 3 * n,
                    properties: 8 * n,
                },
                nodes_visited: 2 + 3 * n,
                properties_read: 8 * n,
            },
            "n = {n}"
        );
    }
}
