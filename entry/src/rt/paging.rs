//! The guest's identity map.
//!
//! At entry the 32-bit code maps the first 4 GiB with 2 MiB pages
//! (one PML4 entry, four PDPT entries, four page directories). RAM above
//! 4 GiB is mapped later, from Rust, by `extend_identity_map` (on
//! `target_os = "none"`): with 1 GiB pages when CPUID says the CPU has
//! them, else with 2 MiB pages, taking tables from a fixed pool in `.bss`
//! ([`POOL_TABLES`] of them), through the one builder,
//! [`crate::paging::identity_map`].

pub use crate::paging::{
    ENTRIES, MAX_IDENTITY_TOP, MapError, PageSize, SIZE_1G, SIZE_2M, Table, Tables, entry_addr,
    identity_map, index, large_page_entry, table_entry,
};

/// What the entry code maps: the first 4 GiB.
pub const BOOT_MAP_TOP: u64 = crate::machine::FOUR_GIB;
/// Tables in the `.bss` pool that `extend_identity_map` draws from:
/// 16 GiB more RAM with 2 MiB pages, 8 TiB with 1 GiB pages.
pub const POOL_TABLES: usize = 16;

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
