//! The guest's identity map.
//!
//! At entry the 32-bit code maps the first 4 GiB with 2 MiB pages
//! (one PML4 entry, four PDPT entries, four page directories). RAM above
//! 4 GiB is mapped later, from Rust, by `extend_identity_map` (on `target_os = "none"`): with 1 GiB
//! pages when CPUID says the CPU has them, else with 2 MiB pages, taking
//! tables from a fixed pool in `.bss` ([`POOL_TABLES`] of them).
//!
//! [`identity_map`] is the mapping logic over the small [`Tables`] trait,
//! so it is tested on the host with tables in a `Vec`.

use x86_64::structures::paging::PageTableFlags as Flags;

/// Entries in one page table.
pub const ENTRIES: usize = 512;
/// One page table: 512 64-bit entries.
pub type Table = [u64; ENTRIES];
/// 2 MiB.
pub const SIZE_2M: u64 = 1 << 21;
/// 1 GiB.
pub const SIZE_1G: u64 = 1 << 30;
/// What the entry code maps: the first 4 GiB.
pub const BOOT_MAP_TOP: u64 = 4 << 30;
/// The end of what 4-level paging can address (2^48).
pub const MAX_IDENTITY_TOP: u64 = 1 << 48;
/// Tables in the `.bss` pool that `extend_identity_map` draws from:
/// 16 GiB more RAM with 2 MiB pages, 8 TiB with 1 GiB pages.
pub const POOL_TABLES: usize = 16;

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

#[cfg(target_os = "none")]
pub use hw::{BOOT_TABLES, BootTables, extend_identity_map, mapped_top};

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::rt::BootCell;
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// The tables the entry code fills: PML4, one PDPT and four page
    /// directories, contiguous and page-aligned (the entry code relies on
    /// these offsets: PML4 at +0, PDPT at +4 KiB, PDs at +8 KiB).
    #[repr(C, align(4096))]
    pub struct BootTables {
        /// The PML4 (CR3 points here).
        pub pml4: Table,
        /// The PDPT for the first 512 GiB.
        pub pdpt: Table,
        /// The page directories for the first 4 GiB.
        pub pd: [Table; 4],
    }

    /// The boot page tables; filled by the entry code in `.bss`.
    pub static BOOT_TABLES: BootCell<BootTables> = BootCell::new(BootTables {
        pml4: [0; ENTRIES],
        pdpt: [0; ENTRIES],
        pd: [[0; ENTRIES]; 4],
    });

    #[repr(C, align(4096))]
    struct Pool([Table; POOL_TABLES]);

    static POOL: BootCell<Pool> = BootCell::new(Pool([[0; ENTRIES]; POOL_TABLES]));
    static POOL_USED: AtomicUsize = AtomicUsize::new(0);
    static MAPPED_TOP: AtomicU64 = AtomicU64::new(BOOT_MAP_TOP);

    /// The top of the identity map: everything below is mapped.
    pub fn mapped_top() -> u64 {
        MAPPED_TOP.load(Ordering::Relaxed)
    }

    struct Live;

    impl Tables for Live {
        fn alloc(&mut self) -> Option<u64> {
            let used = POOL_USED.load(Ordering::Relaxed);
            if used >= POOL_TABLES {
                return None;
            }
            POOL_USED.store(used + 1, Ordering::Relaxed);
            // Pool tables are in `.bss`, zeroed by the entry code, and
            // handed out once each.
            Some(POOL.get() as u64 + (used * size_of::<Table>()) as u64)
        }

        fn table(&mut self, phys: u64) -> &mut Table {
            // SAFETY: `phys` is the boot PML4/PDPT/PD or a pool table (the
            // only addresses `identity_map` passes: the root, and entries it
            // or the entry code wrote), all identity-mapped statics that only
            // this single-threaded code touches; the hardware walker reads
            // them concurrently, which is why entries are written whole.
            unsafe { &mut *(phys as *mut Table) }
        }
    }

    /// Extends the identity map to cover `top` (for example, the end of the
    /// highest RAM range), with 1 GiB pages if the CPU has them. Returns
    /// the new top of the map.
    pub fn extend_identity_map(top: u64) -> Result<u64, MapError> {
        let current = mapped_top();
        if top <= current {
            return Ok(current);
        }
        let page = if has_1g_pages() {
            PageSize::Size1G
        } else {
            PageSize::Size2M
        };
        let pml4 = BOOT_TABLES.get() as u64;
        let new_top = identity_map(&mut Live, pml4, current, top, page)?;
        // New entries replace non-present ones, which the TLB does not
        // cache; reloading CR3 also drops any paging-structure caches.
        let (frame, flags) = x86_64::registers::control::Cr3::read();
        // SAFETY: the same PML4 and flags: the mapping only grew.
        unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
        MAPPED_TOP.store(new_top, Ordering::Relaxed);
        Ok(new_top)
    }

    fn has_1g_pages() -> bool {
        let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
        max_ext >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 26) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            identity_map(&mut t, 0x1000, 0, BOOT_MAP_TOP, PageSize::Size2M).unwrap();
            let start = BOOT_MAP_TOP + a;
            let top1 = identity_map(&mut t, 0x1000, start, start + len, page).unwrap();
            let start2 = top1 + gap;
            let top2 = identity_map(&mut t, 0x1000, start2, start2 + len, page).unwrap();
            let first = start & !(size - 1);
            let second = start2 & !(size - 1);
            for p in &probes {
                for (lo, hi) in [(0, BOOT_MAP_TOP), (first, top1), (second, top2)] {
                    let addr = lo + p * 4099 % (hi - lo);
                    proptest::prop_assert_eq!(walk(&mut t, addr), Some(addr));
                }
            }
            if second > top1 && first > BOOT_MAP_TOP {
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
}
