//! Guest-physical layout on the host side: where RAM is, the MMIO hole,
//! the ranges the VMM reserves for itself, and the one interval-overlap
//! check. Addresses the guest relies on too (GDT, IDT, ACPI region, ISA
//! window) are the machine contract's (`pvh_entry::machine`), re-exported
//! here.
//!
//! Nothing hypervisor-specific is built in: a VMM names its own reserved
//! ranges (KVM's identity-map page and TSS, a firmware area, an MMIO
//! window inside RAM) with [`GuestRamBuilder::reserve`], and the memory map
//! start_info carries shows exactly those, plus the ISA window.

use crate::error::LoadError;
use core::ops::Range;
use pvh_entry::{MemmapEntry, MemmapType};

pub use pvh_entry::machine::{
    ACPI_REGION, FIRST_ALLOC, GDT_ADDR, IDT_ADDR, ISA_WINDOW, MP_TABLE_ADDR, PAGE_SIZE,
};

/// Start of the MMIO hole below 4 GiB: RAM above 3 GiB moves to 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the MMIO hole (4 GiB).
pub const MMIO_HOLE_END: u64 = pvh_entry::machine::FOUR_GIB;
/// Smallest RAM the planner accepts.
pub const MIN_RAM_SIZE: u64 = 2 << 20;
/// Largest RAM the planner accepts (64 TiB; beyond common guest physical
/// address widths' comfort).
pub const MAX_RAM_SIZE: u64 = 1 << 46;

/// Whether two half-open ranges share a byte. Empty ranges overlap nothing.
/// The one overlap check of the crate.
pub const fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end
}

/// Whether `inner` lies entirely inside `outer` (an empty `inner` lies
/// anywhere).
pub const fn contains(outer: &Range<u64>, inner: &Range<u64>) -> bool {
    inner.start >= inner.end || (outer.start <= inner.start && inner.end <= outer.end)
}

/// `start..start + len`, or an error naming `what` if it wraps.
pub fn range(what: &'static str, start: u64, len: u64) -> Result<Range<u64>, LoadError> {
    let end = start
        .checked_add(len)
        .ok_or(LoadError::AddressWraps { what, start, len })?;
    Ok(start..end)
}

/// Rounds up to a power-of-two `align`; `None` on overflow.
pub const fn align_up(v: u64, align: u64) -> Option<u64> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// A guest-physical range the VMM keeps for itself: never RAM to the
/// guest, never used by the plan, RESERVED in the memory map.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reservation {
    /// What the VMM keeps there (shown in the plan: "KVM TSS").
    pub name: &'static str,
    /// The range (page-aligned, non-empty).
    pub range: Range<u64>,
}

/// Builds a [`GuestRam`] with the VMM's reserved ranges
/// ([`GuestRam::builder`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct GuestRamBuilder {
    size: u64,
    reserved: Vec<Reservation>,
}

impl GuestRamBuilder {
    /// Reserves `range` for the VMM under `name`. Ranges must be
    /// page-aligned, non-empty and disjoint; they may lie in RAM (which
    /// the guest then loses) or in the MMIO hole.
    pub fn reserve(mut self, name: &'static str, range: Range<u64>) -> Self {
        self.reserved.push(Reservation { name, range });
        self
    }

    /// The RAM, or the error naming the first bad size or reservation.
    pub fn build(self) -> Result<GuestRam, LoadError> {
        let mut ram = GuestRam::new(self.size)?;
        for (i, r) in self.reserved.iter().enumerate() {
            let bad = |why| LoadError::BadReservation {
                name: r.name,
                start: r.range.start,
                end: r.range.end,
                why,
            };
            if r.range.start >= r.range.end {
                return Err(bad("empty"));
            }
            if r.range.start % PAGE_SIZE != 0 || r.range.end % PAGE_SIZE != 0 {
                return Err(bad("not page-aligned"));
            }
            if self.reserved[..i]
                .iter()
                .any(|o| overlaps(&o.range, &r.range))
            {
                return Err(bad("overlaps another reservation"));
            }
        }
        let mut reserved = self.reserved;
        reserved.sort_by_key(|r| r.range.start);
        ram.reserved = reserved;
        Ok(ram)
    }
}

/// Guest RAM as the hypervisor backs it: up to 3 GiB from 0, the rest from
/// 4 GiB, leaving the MMIO hole `0xc000_0000..0x1_0000_0000`, and the
/// ranges the VMM reserved ([`GuestRam::builder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRam {
    size: u64,
    regions: Vec<(u64, u64)>,
    reserved: Vec<Reservation>,
}

impl GuestRam {
    /// RAM of `size` bytes with reserved ranges: see [`GuestRamBuilder`].
    pub fn builder(size: u64) -> GuestRamBuilder {
        GuestRamBuilder {
            size,
            reserved: Vec::new(),
        }
    }

    /// RAM of `size` bytes (a multiple of 4 KiB, at least
    /// [`MIN_RAM_SIZE`], at most [`MAX_RAM_SIZE`]) with no reserved range.
    pub fn new(size: u64) -> Result<Self, LoadError> {
        if size % PAGE_SIZE != 0 {
            return Err(LoadError::RamUnaligned { size });
        }
        if !(MIN_RAM_SIZE..=MAX_RAM_SIZE).contains(&size) {
            return Err(LoadError::RamSize {
                size,
                min: MIN_RAM_SIZE,
                max: MAX_RAM_SIZE,
            });
        }
        let low = size.min(MMIO_HOLE_START);
        let mut regions = vec![(0, low)];
        if size > low {
            regions.push((MMIO_HOLE_END, size - low));
        }
        Ok(Self {
            size,
            regions,
            reserved: Vec::new(),
        })
    }

    /// The VMM's reserved ranges, ascending.
    pub fn reserved(&self) -> &[Reservation] {
        &self.reserved
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The regions to back with memory, as (guest-physical address, length),
    /// ascending. The ISA window is inside the first region (backed, but not
    /// RAM in the memory map).
    pub fn regions(&self) -> &[(u64, u64)] {
        &self.regions
    }

    /// One past the highest RAM byte.
    pub fn end(&self) -> u64 {
        self.regions.last().map_or(0, |&(start, len)| start + len)
    }

    /// Whether `r` lies inside one backed region.
    pub fn backs(&self, r: &Range<u64>) -> bool {
        self.regions
            .iter()
            .any(|&(start, len)| contains(&(start..start + len), r))
    }

    /// The ranges the guest may use as RAM: the regions minus the ISA
    /// window and the reserved ranges, ascending.
    pub fn usable(&self) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = self.regions.iter().map(|&(s, l)| s..s + l).collect();
        let holes = core::iter::once(&ISA_WINDOW).chain(self.reserved.iter().map(|r| &r.range));
        for hole in holes {
            out = out
                .into_iter()
                .flat_map(|r| {
                    if overlaps(&r, hole) {
                        let below = (r.start < hole.start).then_some(r.start..hole.start);
                        let above = (r.end > hole.end).then_some(hole.end..r.end);
                        [below, above]
                    } else {
                        [Some(r), None]
                    }
                })
                .flatten()
                .collect();
        }
        out
    }

    /// Whether `r` lies inside one usable RAM range.
    pub fn is_usable(&self, r: &Range<u64>) -> bool {
        self.usable().iter().any(|u| contains(u, r))
    }

    /// The memory map start_info carries: usable RAM, the ISA window and
    /// the VMM's reserved ranges as RESERVED, sorted by address.
    pub fn memmap(&self) -> Vec<MemmapEntry> {
        let entry = |r: Range<u64>, type_: MemmapType| MemmapEntry {
            addr: r.start,
            size: r.end - r.start,
            type_,
            reserved: 0,
        };
        let mut map: Vec<MemmapEntry> = self
            .usable()
            .into_iter()
            .map(|r| entry(r, MemmapType::RAM))
            .collect();
        map.push(entry(ISA_WINDOW, MemmapType::RESERVED));
        for r in &self.reserved {
            map.push(entry(r.range.clone(), MemmapType::RESERVED));
        }
        map.sort_by_key(|e| e.addr);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range `pvh` reserves for KVM (identity-map page + TSS), as a
    /// VMM would pass it.
    const HYPERVISOR_RESERVED: Range<u64> = 0xfffb_c000..0xfffc_0000;

    fn kvm_ram(size: u64) -> Result<GuestRam, LoadError> {
        GuestRam::builder(size)
            .reserve("hypervisor reserved", HYPERVISOR_RESERVED)
            .build()
    }

    #[test]
    fn overlap_rules() {
        assert!(overlaps(&(0..10), &(9..20)));
        assert!(!overlaps(&(0..10), &(10..20)));
        assert!(!overlaps(&(10..20), &(0..10)));
        assert!(overlaps(&(5..6), &(0..10)));
        assert!(overlaps(&(0..10), &(5..6)));
        assert!(!overlaps(&(5..5), &(0..10)), "empty overlaps nothing");
        assert!(!overlaps(&(0..10), &(3..3)));
        assert!(overlaps(&(u64::MAX - 1..u64::MAX), &(0..u64::MAX)));
    }

    #[test]
    fn containment() {
        assert!(contains(&(0..10), &(0..10)));
        assert!(contains(&(0..10), &(3..4)));
        assert!(!contains(&(0..10), &(3..11)));
        assert!(contains(&(0..10), &(30..30)));
    }

    #[test]
    fn small_ram_is_one_region() {
        let ram = GuestRam::new(512 << 20).unwrap();
        assert_eq!(ram.regions(), &[(0, 512 << 20)]);
        assert_eq!(ram.end(), 512 << 20);
        assert_eq!(ram.usable(), vec![0..0xa_0000, 0x10_0000..512 << 20]);
    }

    #[test]
    fn large_ram_splits_around_the_mmio_hole() {
        let ram = kvm_ram(4 << 30).unwrap();
        assert_eq!(
            ram.regions(),
            &[(0, 0xc000_0000), (0x1_0000_0000, 0x4000_0000)]
        );
        assert!(!ram.backs(&(0xbfff_f000..0xc000_1000)));
        assert!(ram.backs(&(0x1_0000_0000..0x1_4000_0000)));
        let map = ram.memmap();
        let rows: Vec<(u64, u64, u32)> = map.iter().map(|e| (e.addr, e.size, e.type_.0)).collect();
        assert_eq!(
            rows,
            vec![
                (0, 0xa_0000, 1),
                (0xa_0000, 0x6_0000, 2),
                (0x10_0000, 0xc000_0000 - 0x10_0000, 1),
                (0xfffb_c000, 0x4000, 2),
                (0x1_0000_0000, 0x4000_0000, 1),
            ]
        );
    }

    #[test]
    fn exactly_3g_has_no_high_region() {
        assert_eq!(GuestRam::new(3 << 30).unwrap().regions().len(), 1);
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        assert!(matches!(
            GuestRam::new(4097),
            Err(LoadError::RamUnaligned { size: 4097 })
        ));
        assert!(matches!(
            GuestRam::new(1 << 20),
            Err(LoadError::RamSize {
                size: 0x10_0000,
                ..
            })
        ));
        assert!(matches!(
            GuestRam::new(1 << 60),
            Err(LoadError::RamSize { .. })
        ));
    }

    #[test]
    fn hypervisor_range_is_never_ram() {
        for size in [MIN_RAM_SIZE, 1 << 30, 3 << 30, 8 << 30] {
            let ram = kvm_ram(size).unwrap();
            assert!(
                !ram.regions()
                    .iter()
                    .any(|&(s, l)| overlaps(&(s..s + l), &HYPERVISOR_RESERVED))
            );
        }
        assert_eq!(HYPERVISOR_RESERVED, 0xfffb_c000..0xfffc_0000);
    }

    #[test]
    fn reservations_in_ram_split_it_and_are_checked() {
        let ram = GuestRam::builder(16 << 20)
            .reserve("firmware", 0x80_0000..0x90_0000)
            .build()
            .unwrap();
        assert_eq!(
            ram.usable(),
            vec![0..0xa_0000, 0x10_0000..0x80_0000, 0x90_0000..16 << 20]
        );
        let rows: Vec<(u64, u64, u32)> = ram
            .memmap()
            .iter()
            .map(|e| (e.addr, e.size, e.type_.0))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, 0xa_0000, 1),
                (0xa_0000, 0x6_0000, 2),
                (0x10_0000, 0x70_0000, 1),
                (0x80_0000, 0x10_0000, 2),
                (0x90_0000, 0x70_0000, 1),
            ]
        );
        assert!(GuestRam::new(16 << 20).unwrap().reserved().is_empty());
        for (range, why) in [
            (0x1000..0x1000, "empty"),
            (0x1001..0x2000, "not page-aligned"),
            (0x8_0000..0x9_0000, "overlaps another reservation"),
        ] {
            let err = GuestRam::builder(16 << 20)
                .reserve("a", 0x8_0000..0x9_0000)
                .reserve("b", range)
                .build()
                .unwrap_err();
            assert!(
                matches!(err, LoadError::BadReservation { why: w, .. } if w == why),
                "{err}"
            );
        }
    }

    #[test]
    fn acpi_region_is_backed_reserved_and_not_ram() {
        assert_eq!(ACPI_REGION, 0xe_0000..0x10_0000);
        let ram = GuestRam::new(MIN_RAM_SIZE).unwrap();
        assert!(ram.backs(&ACPI_REGION));
        assert!(!ram.usable().iter().any(|u| overlaps(u, &ACPI_REGION)));
        assert!(ram.memmap().iter().any(|e| e.type_ == MemmapType::RESERVED
            && contains(&(e.addr..e.addr + e.size), &ACPI_REGION)));
    }
}
