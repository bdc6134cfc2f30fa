//! The Linux 64-bit boot protocol from inside a PVH guest: what a stub
//! checks in a bzImage's setup header and where it puts the kernel.
//!
//! Pure functions over the e820 map, tested on the host; the guest stub
//! calls them with the map [`crate::zeropage::translate`] produced.

use pvh_bootparams::{BzImage, E820Entry, E820Type, ImageError, SetupHeader, XLoadFlags};

/// Why a kernel cannot be booted, or placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinuxBootError {
    /// The image is not a usable bzImage.
    #[error("not a usable bzImage: {0}")]
    Image(#[from] ImageError),
    /// `kernel_alignment` is not a power of two.
    #[error("kernel_alignment {0:#x} is not a power of two")]
    BadAlignment(u32),
    /// `init_size` is 0 or smaller than the code to copy.
    #[error("init_size {init_size:#x} is smaller than the {code:#x}-byte kernel")]
    BadInitSize {
        /// `init_size`.
        init_size: u64,
        /// Protected-mode code size.
        code: u64,
    },
    /// No free RAM range can hold the kernel.
    #[error("no room for {size:#x} bytes aligned to {align:#x} in free RAM")]
    NoRoom {
        /// Bytes needed.
        size: u64,
        /// Alignment needed.
        align: u64,
    },
}

/// What a kernel needs from its loader, from its setup header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelNeeds {
    /// Bytes of free RAM needed from the load address (`init_size`).
    pub init_size: u64,
    /// Bytes of protected-mode code to copy there.
    pub code_size: u64,
    /// Required alignment of the load address.
    pub align: u64,
    /// Preferred load address (`pref_address`, or 1 MiB for old headers).
    pub pref_address: u64,
    /// Whether the kernel may go elsewhere than `pref_address`.
    pub relocatable: bool,
    /// Whether the kernel, zero page, command line and initrd may be above
    /// 4 GiB.
    pub above_4g: bool,
}

impl KernelNeeds {
    /// Checks the image for the 64-bit boot protocol (protocol 2.12+,
    /// `XLF_KERNEL_64`) and reads what it needs.
    pub fn of(image: &BzImage<'_>) -> Result<Self, LinuxBootError> {
        image.check_64bit_boot()?;
        let hdr: &SetupHeader = image.header();
        let align = hdr.kernel_alignment;
        if !align.is_power_of_two() {
            return Err(LinuxBootError::BadAlignment(align));
        }
        let code_size = image.kernel().len() as u64;
        let init_size = u64::from(hdr.init_size);
        if init_size < code_size {
            return Err(LinuxBootError::BadInitSize { init_size, code: code_size });
        }
        let pref = hdr.pref_address;
        Ok(Self {
            init_size,
            code_size,
            align: u64::from(align),
            pref_address: if pref == 0 { 0x10_0000 } else { pref },
            relocatable: hdr.relocatable_kernel != 0,
            above_4g: hdr.xload_flags().contains(XLoadFlags::CAN_BE_LOADED_ABOVE_4G),
        })
    }
}

/// A request for free RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes.
    pub size: u64,
    /// Alignment (a power of two; 0 or 1 mean none).
    pub align: u64,
    /// Lowest acceptable address.
    pub min: u64,
    /// One past the highest acceptable byte.
    pub limit: u64,
    /// Tried first, if any.
    pub preferred: Option<u64>,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    let mask = align.max(1) - 1;
    v.checked_add(mask).map(|v| v & !mask)
}

/// Whether `start..start+size` is usable: inside one RAM entry, clear of
/// every non-RAM entry and of every range in `avoid`.
pub fn is_free(e820: &[E820Entry], avoid: &[(u64, u64)], start: u64, size: u64) -> bool {
    let Some(end) = start.checked_add(size) else { return false };
    let in_ram = e820.iter().any(|e| {
        let (addr, t) = (e.addr, e.type_);
        t == E820Type::RAM && addr <= start && e.end().is_some_and(|e| e >= end)
    });
    let reserved = e820.iter().any(|e| {
        let t = e.type_;
        t != E820Type::RAM && e.end().is_some_and(|e_end| overlaps((e.addr, e_end), (start, end)))
    });
    in_ram && !reserved && !avoid.iter().any(|&r| overlaps(r, (start, end)))
}

/// Finds the lowest address satisfying `req` (after trying
/// `req.preferred`), in RAM per `e820`, clear of non-RAM entries and of
/// `avoid` (half-open ranges). Runs in O((e820 + avoid)^2) steps at most:
/// every step moves the candidate past the end of some range.
pub fn find_free(e820: &[E820Entry], avoid: &[(u64, u64)], req: &Request) -> Option<u64> {
    let fits = |start: u64| {
        start >= req.min
            && start.checked_add(req.size).is_some_and(|end| end <= req.limit)
            && align_up(start, req.align) == Some(start)
            && is_free(e820, avoid, start, req.size)
    };
    if let Some(p) = req.preferred.filter(|&p| fits(p)) {
        return Some(p);
    }
    let blockers = || {
        e820.iter()
            .filter(|e| { e.type_ } != E820Type::RAM)
            .filter_map(|e| Some((e.addr, e.end()?)))
            .chain(avoid.iter().copied())
    };
    let mut best: Option<u64> = None;
    for ram in e820.iter().filter(|e| { e.type_ } == E820Type::RAM) {
        let Some(ram_end) = ram.end() else { continue };
        let Some(mut at) = align_up(ram.addr.max(req.min), req.align) else { continue };
        // Each pass either succeeds, ends, or jumps past a blocker's end, so
        // the loop ends within (number of blockers + 1) passes.
        for _ in 0..=blockers().count() {
            let Some(end) = at.checked_add(req.size) else { break };
            if end > ram_end || end > req.limit {
                break;
            }
            match blockers().filter(|&b| overlaps(b, (at, end))).map(|b| b.1).max() {
                None => {
                    best = Some(best.map_or(at, |b| b.min(at)));
                    break;
                }
                Some(past) => match align_up(past, req.align) {
                    Some(next) if next > at => at = next,
                    _ => break,
                },
            }
        }
    }
    best.filter(|&b| fits(b))
}

/// Chooses where to load a kernel with `needs`: its preferred address if
/// free, otherwise (relocatable kernels only) the lowest aligned free range
/// of `init_size` bytes at or above 1 MiB, below 4 GiB unless the kernel
/// accepts more.
pub fn choose_kernel_address(
    needs: &KernelNeeds,
    e820: &[E820Entry],
    avoid: &[(u64, u64)],
) -> Result<u64, LinuxBootError> {
    let limit = if needs.above_4g { u64::MAX } else { 1 << 32 };
    let pref_end = needs.pref_address.checked_add(needs.init_size);
    if pref_end.is_some_and(|end| end <= limit) && is_free(e820, avoid, needs.pref_address, needs.init_size) {
        return Ok(needs.pref_address);
    }
    let no_room = LinuxBootError::NoRoom { size: needs.init_size, align: needs.align };
    if !needs.relocatable {
        return Err(no_room);
    }
    let req = Request { size: needs.init_size, align: needs.align, min: 0x10_0000, limit, preferred: None };
    find_free(e820, avoid, &req).ok_or(no_room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ram(addr: u64, size: u64) -> E820Entry {
        E820Entry::new(addr, size, E820Type::RAM)
    }
    fn rsv(addr: u64, size: u64) -> E820Entry {
        E820Entry::new(addr, size, E820Type::RESERVED)
    }

    fn needs(pref: u64, relocatable: bool) -> KernelNeeds {
        KernelNeeds {
            init_size: 0x100_0000,
            code_size: 0x80_0000,
            align: 0x20_0000,
            pref_address: pref,
            relocatable,
            above_4g: false,
        }
    }

    #[test]
    fn preferred_address_when_free() {
        let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0x7ff0_0000)];
        assert_eq!(choose_kernel_address(&needs(0x100_0000, true), &map, &[]), Ok(0x100_0000));
    }

    #[test]
    fn relocates_past_modules_and_reserved_ranges() {
        let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0x7ff0_0000), rsv(0x180_0000, 0x1000)];
        // The module covers the preferred address; the reserved page is in
        // the next aligned slot; the one after must be chosen.
        let avoid = [(0x100_0000, 0x120_0000)];
        let got = choose_kernel_address(&needs(0x100_0000, true), &map, &avoid).unwrap();
        assert_eq!(got, 0x1a0_0000);
        assert!(is_free(&map, &avoid, got, 0x100_0000));
        // Not relocatable: no way out.
        assert_eq!(
            choose_kernel_address(&needs(0x100_0000, false), &map, &avoid),
            Err(LinuxBootError::NoRoom { size: 0x100_0000, align: 0x20_0000 })
        );
    }

    #[test]
    fn no_room_in_small_memory() {
        let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0x80_0000)];
        assert!(matches!(
            choose_kernel_address(&needs(0x100_0000, true), &map, &[]),
            Err(LinuxBootError::NoRoom { .. })
        ));
    }

    #[test]
    fn ram_overlapped_by_reserved_is_not_free() {
        let map = [ram(0x10_0000, 0x1000_0000), rsv(0x100_0000, 0x10)];
        assert!(!is_free(&map, &[], 0x100_0000, 0x1000));
        assert!(is_free(&map, &[], 0x200_0000, 0x1000));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        // In a small address space, compare with a brute-force search.
        #[test]
        fn finds_the_lowest_free_slot(
            rams in proptest::collection::vec((0u64..64, 1u64..32), 1..5),
            rsvs in proptest::collection::vec((0u64..64, 1u64..8), 0..5),
            avoid in proptest::collection::vec((0u64..64, 1u64..8), 0..5),
            size in 1u64..16,
            align_log in 0u32..4,
            min in 0u64..16,
        ) {
            let mut map: Vec<E820Entry> = rams.iter().map(|&(a, s)| ram(a, s)).collect();
            map.extend(rsvs.iter().map(|&(a, s)| rsv(a, s)));
            let avoid: Vec<(u64, u64)> = avoid.iter().map(|&(a, s)| (a, a + s)).collect();
            let align = 1u64 << align_log;
            let req = Request { size, align, min, limit: 128, preferred: None };
            let brute = (min..128).filter(|s| s % align == 0)
                .find(|&s| s + size <= 128 && is_free(&map, &avoid, s, size));
            prop_assert_eq!(find_free(&map, &avoid, &req), brute);
        }

        #[test]
        fn absurd_values_never_panic(
            entries in proptest::collection::vec((any::<u64>(), any::<u64>(), 1u32..4), 0..20),
            size in any::<u64>(), align_log in 0u32..64, min in any::<u64>(), limit in any::<u64>(),
        ) {
            let map: Vec<E820Entry> = entries.iter().map(|&(a, s, t)| E820Entry::new(a, s, E820Type(t))).collect();
            let req = Request { size, align: 1 << align_log, min, limit, preferred: Some(min) };
            if let Some(at) = find_free(&map, &[], &req) {
                prop_assert!(is_free(&map, &[], at, size));
            }
        }
    }
}
