//! Identity page tables: the one builder, for the guest runtime (growing
//! its map above 4 GiB) and for the host loader (the Linux 64-bit entry's
//! tables).
//!
//! [`identity_map`] is the mapping logic over the small [`Tables`] trait:
//! the runtime implements it over live tables in `.bss`, the host over a
//! caller buffer ([`BufferTables`]). Both therefore write the same entries
//! in the same layout (PML4 first, then tables in the order the walk needs
//! them), and the logic is tested on the host with tables in a `Vec`.

use x86_64::structures::paging::PageTableFlags as Flags;

/// Entries in one page table.
pub const ENTRIES: usize = 512;
/// One page table: 512 64-bit entries.
pub type Table = [u64; ENTRIES];
/// 2 MiB.
pub const SIZE_2M: u64 = 1 << 21;
/// 1 GiB.
pub const SIZE_1G: u64 = 1 << 30;
/// The end of what 4-level paging can address (2^48).
pub const MAX_IDENTITY_TOP: u64 = 1 << 48;

/// The size of the large pages a mapping uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 2 MiB pages, in page directories.
    Size2M,
    /// 1 GiB pages, straight in the PDPT (needs CPUID `pdpe1gb`).
    Size1G,
}

impl PageSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size2M => SIZE_2M,
            Self::Size1G => SIZE_1G,
        }
    }
}

/// Why the identity map cannot grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The requested top is beyond what 4-level paging addresses.
    #[error("cannot identity-map up to {top:#x}: 4-level paging ends at {max:#x}")]
    TooHigh {
        /// The requested top.
        top: u64,
        /// The limit.
        max: u64,
    },
    /// No page table was left to map `addr` with.
    #[error("out of page tables mapping {addr:#x}")]
    OutOfTables {
        /// The address being mapped when the tables ran out.
        addr: u64,
    },
}

/// An entry that points at the next-level table at `table`.
pub const fn table_entry(table: u64) -> u64 {
    table | Flags::PRESENT.bits() | Flags::WRITABLE.bits()
}

/// An entry that maps the large page at `addr` (2 MiB in a page directory,
/// 1 GiB in a PDPT), present and writable.
pub const fn large_page_entry(addr: u64) -> u64 {
    addr | Flags::PRESENT.bits() | Flags::WRITABLE.bits() | Flags::HUGE_PAGE.bits()
}

/// The physical address an entry points at (bits 12..52).
pub const fn entry_addr(entry: u64) -> u64 {
    entry & 0x000f_ffff_ffff_f000
}

fn present(entry: u64) -> bool {
    entry & Flags::PRESENT.bits() != 0
}

fn large(entry: u64) -> bool {
    entry & Flags::HUGE_PAGE.bits() != 0
}

/// Index of `addr` in the table of `level` (4 = PML4, 3 = PDPT, 2 = PD).
pub const fn index(addr: u64, level: u32) -> usize {
    ((addr >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Page tables reachable by physical address.
pub trait Tables {
    /// A new, zeroed table's physical address (4 KiB aligned), or `None` if
    /// none is left.
    fn alloc(&mut self) -> Option<u64>;
    /// The table at physical address `phys` (one [`alloc`](Self::alloc)
    /// returned, or one of the boot tables).
    fn table(&mut self, phys: u64) -> &mut Table;
}

/// Identity-maps `start..end` (rounded out to `page`) into the 4-level
/// hierarchy rooted at `pml4`. Ranges that are already mapped (a present
/// entry at the level where a page would go, or a large page above it) are
/// left alone: the hierarchy is assumed to be an identity map already.
/// Returns the end of the mapped range (`end` rounded up).
pub fn identity_map<T: Tables + ?Sized>(
    tables: &mut T,
    pml4: u64,
    start: u64,
    end: u64,
    page: PageSize,
) -> Result<u64, MapError> {
    let size = page.bytes();
    let top = end
        .checked_add(size - 1)
        .map(|e| e & !(size - 1))
        .filter(|&t| t <= MAX_IDENTITY_TOP)
        .ok_or(MapError::TooHigh {
            top: end,
            max: MAX_IDENTITY_TOP,
        })?;
    let mut addr = start & !(size - 1);
    while addr < top {
        let pdpt = next_table(tables, pml4, index(addr, 4), addr)?;
        let Some(pdpt) = pdpt else {
            addr += 1 << 39;
            addr &= !((1 << 39) - 1);
            continue;
        };
        match page {
            PageSize::Size1G => {
                let slot = &mut tables.table(pdpt)[index(addr, 3)];
                if !present(*slot) {
                    *slot = large_page_entry(addr);
                }
                addr += SIZE_1G;
            }
            PageSize::Size2M => {
                let Some(pd) = next_table(tables, pdpt, index(addr, 3), addr)? else {
                    addr = (addr | (SIZE_1G - 1)) + 1;
                    continue;
                };
                let slot = &mut tables.table(pd)[index(addr, 2)];
                if !present(*slot) {
                    *slot = large_page_entry(addr);
                }
                addr += SIZE_2M;
            }
        }
    }
    Ok(top)
}

/// The table that entry `idx` of `table` points at, allocated if absent;
/// `None` if the entry is a large page (already mapped).
fn next_table<T: Tables + ?Sized>(
    tables: &mut T,
    table: u64,
    idx: usize,
    addr: u64,
) -> Result<Option<u64>, MapError> {
    let entry = tables.table(table)[idx];
    if present(entry) {
        return Ok((!large(entry)).then_some(entry_addr(entry)));
    }
    let new = tables.alloc().ok_or(MapError::OutOfTables { addr })?;
    tables.table(table)[idx] = table_entry(new);
    Ok(Some(new))
}

/// Page tables in a caller's buffer of [`Table`]s, the first of which is
/// the root (PML4), at guest-physical address `base`: table `i` is at
/// `base + i * 4096`. Tables are handed out in order, so the layout is
/// fixed by the walk: PML4, then the first PDPT, then its page directories.
#[derive(Debug)]
pub struct BufferTables<'a> {
    base: u64,
    tables: &'a mut [Table],
    used: usize,
}

impl<'a> BufferTables<'a> {
    /// Tables at `base` (4 KiB aligned) in `tables` (zeroed; at least the
    /// root). The root is `base`.
    pub fn new(base: u64, tables: &'a mut [Table]) -> Self {
        let used = usize::from(!tables.is_empty());
        Self { base, tables, used }
    }

    /// How many tables are in use (the root included).
    pub fn used(&self) -> usize {
        self.used
    }
}

impl Tables for BufferTables<'_> {
    fn alloc(&mut self) -> Option<u64> {
        let next = self.tables.get(self.used)?;
        debug_assert!(next.iter().all(|&e| e == 0), "tables must start zeroed");
        let phys = self.base + (self.used * size_of::<Table>()) as u64;
        self.used += 1;
        Some(phys)
    }

    fn table(&mut self, phys: u64) -> &mut Table {
        // `identity_map` only passes the root and addresses `alloc`
        // returned, all inside the buffer.
        let i = ((phys - self.base) / size_of::<Table>() as u64) as usize;
        &mut self.tables[i]
    }
}

/// How many tables [`identity_map`] needs to map `0..top` from an empty
/// root with `page`-sized pages: the root, one PDPT per 512 GiB and (2 MiB
/// pages) one page directory per GiB.
pub fn tables_for(top: u64, page: PageSize) -> Result<usize, MapError> {
    if top > MAX_IDENTITY_TOP {
        return Err(MapError::TooHigh {
            top,
            max: MAX_IDENTITY_TOP,
        });
    }
    let pdpts = top.div_ceil(1 << 39);
    let pds = match page {
        PageSize::Size2M => top.div_ceil(SIZE_1G),
        PageSize::Size1G => 0,
    };
    Ok((1 + pdpts + pds) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::FOUR_GIB;

    /// Tables in a Vec; "physical" addresses are 0x1000 * (index + 1).
    struct VecTables {
        tables: Vec<Table>,
        limit: usize,
    }

    impl VecTables {
        fn new(limit: usize) -> Self {
            Self {
                tables: vec![[0; ENTRIES]],
                limit,
            }
        }
    }

    impl Tables for VecTables {
        fn alloc(&mut self) -> Option<u64> {
            if self.tables.len() > self.limit {
                return None;
            }
            self.tables.push([0; ENTRIES]);
            Some(self.tables.len() as u64 * 0x1000)
        }
        fn table(&mut self, phys: u64) -> &mut Table {
            &mut self.tables[(phys / 0x1000 - 1) as usize]
        }
    }

    /// Walks the hierarchy like the CPU: the physical address `addr` maps
    /// to, or `None`.
    fn walk(t: &mut VecTables, addr: u64) -> Option<u64> {
        let mut table = 0x1000;
        for level in [4, 3, 2] {
            let e = t.table(table)[index(addr, level)];
            if e & 1 == 0 {
                return None;
            }
            if level < 4 && e & 0x80 != 0 {
                let size = if level == 3 { SIZE_1G } else { SIZE_2M };
                return Some(entry_addr(e) + (addr & (size - 1)));
            }
            table = entry_addr(e);
        }
        None
    }

    #[test]
    fn entries_match_the_architecture() {
        // Present (0), writable (1), page size (7), per the SDM.
        assert_eq!(large_page_entry(0x4000_0000), 0x4000_0083);
        assert_eq!(table_entry(0x5000), 0x5003);
        assert_eq!(entry_addr(0x8000_0000_4020_0083), 0x4020_0000);
        assert_eq!(index(0x0000_0080_4020_1000, 4), 1);
        assert_eq!(index(0x0000_0080_4020_1000, 3), 1);
        assert_eq!(index(0x0000_0080_4020_1000, 2), 1);
    }

    #[test]
    fn maps_2m_pages_identity() {
        let mut t = VecTables::new(100);
        let top = identity_map(&mut t, 0x1000, 0, 5 << 30, PageSize::Size2M).unwrap();
        assert_eq!(top, 5 << 30);
        for addr in [0, 0x1234_5678, (4 << 30) + 0x20_1234, (5 << 30) - 1] {
            assert_eq!(walk(&mut t, addr), Some(addr), "{addr:#x}");
        }
        assert_eq!(walk(&mut t, 5 << 30), None);
        // PML4 + PDPT + 5 page directories.
        assert_eq!(t.tables.len(), 7);
    }

    #[test]
    fn maps_1g_pages_across_512g_boundaries() {
        let mut t = VecTables::new(100);
        let end = (512u64 << 30) + 3;
        let top = identity_map(&mut t, 0x1000, 4 << 30, end, PageSize::Size1G).unwrap();
        assert_eq!(top, 513 << 30);
        assert_eq!(walk(&mut t, 4 << 30), Some(4 << 30));
        assert_eq!(walk(&mut t, (512 << 30) + 77), Some((512 << 30) + 77));
        assert_eq!(walk(&mut t, 3 << 30), None, "below start stays unmapped");
        assert_eq!(t.tables.len(), 3);
    }

    #[test]
    fn keeps_existing_mappings_and_rounds_up() {
        let mut t = VecTables::new(100);
        identity_map(&mut t, 0x1000, 0, 4 << 30, PageSize::Size2M).unwrap();
        let n = t.tables.len();
        let top = identity_map(&mut t, 0x1000, 4 << 30, (4 << 30) + 1, PageSize::Size1G).unwrap();
        assert_eq!(top, 5 << 30);
        assert_eq!(t.tables.len(), n, "1 GiB pages need no new table");
        assert_eq!(
            walk(&mut t, (4 << 30) + 0x3000_0000),
            Some((4 << 30) + 0x3000_0000)
        );
        assert_eq!(walk(&mut t, 0x20_0000), Some(0x20_0000));
    }

    proptest::proptest! {
        /// Any range, either page size, mapped in two steps over a hierarchy
        /// that already maps 4 GiB: every address in the range (rounded
        /// out) maps to itself, and nothing between the two ranges or above
        /// the top is mapped.
        #[test]
        fn mapping_is_identity_and_exact(
            a in 0u64..(1 << 41),
            len in 1u64..(64 << 30),
            gap in 0u64..(8 << 30),
            huge in proptest::bool::ANY,
            probes in proptest::collection::vec(0u64..1_000_000, 8),
        ) {
            let page = if huge { PageSize::Size1G } else { PageSize::Size2M };
            let size = page.bytes();
            let mut t = VecTables::new(10_000);
            identity_map(&mut t, 0x1000, 0, FOUR_GIB, PageSize::Size2M).unwrap();
            let start = FOUR_GIB + a;
            let top1 = identity_map(&mut t, 0x1000, start, start + len, page).unwrap();
            let start2 = top1 + gap;
            let top2 = identity_map(&mut t, 0x1000, start2, start2 + len, page).unwrap();
            let first = start & !(size - 1);
            let second = start2 & !(size - 1);
            for p in &probes {
                for (lo, hi) in [(0, FOUR_GIB), (first, top1), (second, top2)] {
                    let addr = lo + p * 4099 % (hi - lo);
                    proptest::prop_assert_eq!(walk(&mut t, addr), Some(addr));
                }
            }
            if second > top1 && first > FOUR_GIB {
                // The gap and the space between 4 GiB and the first range.
                proptest::prop_assert_eq!(walk(&mut t, top1), None);
                proptest::prop_assert_eq!(walk(&mut t, first - 1), None);
            }
            proptest::prop_assert_eq!(walk(&mut t, top2), None);
        }
    }

    #[test]
    fn errors_are_typed() {
        let mut t = VecTables::new(2);
        assert_eq!(
            identity_map(&mut t, 0x1000, 0, 8 << 30, PageSize::Size2M),
            Err(MapError::OutOfTables { addr: 1 << 30 })
        );
        assert_eq!(
            identity_map(&mut t, 0x1000, 0, u64::MAX, PageSize::Size1G),
            Err(MapError::TooHigh {
                top: u64::MAX,
                max: MAX_IDENTITY_TOP
            })
        );
    }

    #[test]
    fn buffer_tables_match_the_fixed_linux64_layout() {
        // PML4 at base, PDPT at base + 4 KiB, one PD per GiB after it, 2 MiB
        // pages, entries present | writable (| PS): the layout and values
        // the Linux 64-bit entry's tables have always had (SDM 4.5).
        let base = 0x9000;
        let n = tables_for(FOUR_GIB, PageSize::Size2M).unwrap();
        assert_eq!(n, 6);
        let mut buf = vec![[0u64; ENTRIES]; n];
        let mut t = BufferTables::new(base, &mut buf);
        assert_eq!(
            identity_map(&mut t, base, 0, FOUR_GIB, PageSize::Size2M),
            Ok(FOUR_GIB)
        );
        assert_eq!(t.used(), n);
        assert_eq!(buf[0][0], 0xa003);
        assert_eq!(buf[1][..4], [0xb003, 0xc003, 0xd003, 0xe003]);
        assert_eq!(buf[1][4], 0);
        assert_eq!(buf[2][0], 0x83);
        assert_eq!(buf[2][1], 0x20_0083);
        assert_eq!(buf[5][511], 0xffe0_0083);
        // One table short: a typed error, nothing out of bounds.
        let mut short = vec![[0u64; ENTRIES]; n - 1];
        let mut t = BufferTables::new(base, &mut short);
        assert_eq!(
            identity_map(&mut t, base, 0, FOUR_GIB, PageSize::Size2M),
            Err(MapError::OutOfTables { addr: 3 << 30 })
        );
    }

    #[test]
    fn tables_for_counts_what_identity_map_allocates() {
        for (top, page) in [
            (1, PageSize::Size2M),
            (SIZE_1G, PageSize::Size2M),
            (SIZE_1G + 1, PageSize::Size2M),
            (5 << 30, PageSize::Size2M),
            (600 << 30, PageSize::Size1G),
            (600 << 30, PageSize::Size2M),
        ] {
            let mut t = VecTables::new(100_000);
            identity_map(&mut t, 0x1000, 0, top, page).unwrap();
            assert_eq!(tables_for(top, page), Ok(t.tables.len()), "{top:#x}");
        }
        assert!(tables_for(u64::MAX, PageSize::Size1G).is_err());
    }
}
