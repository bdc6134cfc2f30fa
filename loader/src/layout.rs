//! Guest-physical layout on the host side: where RAM is, the MMIO hole,
//! the pages KVM needs, and the one interval-overlap check. Addresses the
//! guest relies on too (GDT, IDT, ACPI region, ISA window) are the machine
//! contract's (`pvh_entry::machine`), re-exported here.

use crate::error::LoadError;
use core::ops::Range;
use pvh_entry::{MemmapEntry, MemmapType};

pub use pvh_entry::machine::{ACPI_REGION, FIRST_ALLOC, GDT_ADDR, IDT_ADDR, ISA_WINDOW, PAGE_SIZE};

/// Start of the MMIO hole below 4 GiB: RAM above 3 GiB moves to 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the MMIO hole (4 GiB).
pub const MMIO_HOLE_END: u64 = pvh_entry::machine::FOUR_GIB;
/// KVM's identity-map page (`KVM_SET_IDENTITY_MAP_ADDR`), one page.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// KVM's TSS (`KVM_SET_TSS_ADDR`), three pages right after the identity map.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// The range reserved for the hypervisor (identity-map page + TSS), inside
/// the MMIO hole or above the end of low RAM; marked RESERVED in the
/// memory map so the guest never uses it.
pub const HYPERVISOR_RESERVED: Range<u64> = KVM_IDENTITY_MAP_ADDR..KVM_TSS_ADDR + 3 * PAGE_SIZE;
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

/// Guest RAM as the hypervisor backs it: up to 3 GiB from 0, the rest from
/// 4 GiB, leaving the MMIO hole `0xc000_0000..0x1_0000_0000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRam {
    size: u64,
    regions: Vec<(u64, u64)>,
}

impl GuestRam {
    /// RAM of `size` bytes (a multiple of 4 KiB, at least
    /// [`MIN_RAM_SIZE`], at most [`MAX_RAM_SIZE`]).
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
        Ok(Self { size, regions })
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
    /// window, ascending.
    pub fn usable(&self) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        for &(start, len) in &self.regions {
            let r = start..start + len;
            if overlaps(&r, &ISA_WINDOW) {
                if r.start < ISA_WINDOW.start {
                    out.push(r.start..ISA_WINDOW.start);
                }
                if r.end > ISA_WINDOW.end {
                    out.push(ISA_WINDOW.end..r.end);
                }
            } else {
                out.push(r);
            }
        }
        out
    }

    /// Whether `r` lies inside one usable RAM range.
    pub fn is_usable(&self, r: &Range<u64>) -> bool {
        self.usable().iter().any(|u| contains(u, r))
    }

    /// The memory map start_info carries: usable RAM, the ISA window and
    /// the hypervisor's range as RESERVED, sorted by address.
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
        map.push(entry(HYPERVISOR_RESERVED, MemmapType::RESERVED));
        map.sort_by_key(|e| e.addr);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let ram = GuestRam::new(4 << 30).unwrap();
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
            let ram = GuestRam::new(size).unwrap();
            assert!(
                !ram.regions()
                    .iter()
                    .any(|&(s, l)| overlaps(&(s..s + l), &HYPERVISOR_RESERVED))
            );
        }
        assert_eq!(HYPERVISOR_RESERVED, 0xfffb_c000..0xfffc_0000);
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
