//! The Linux 64-bit boot protocol from inside a PVH guest: what a stub
//! checks in a bzImage's setup header and where it puts the kernel.
//!
//! Pure functions over the e820 map, tested on the host; the guest stub
//! calls them with the map [`crate::zeropage::translate`] produced.

use crate::memory::PhysRead;
use crate::reader::StartInfoView;
use crate::start_info::{MemmapEntry, ModlistEntry, StartInfo};
use core::mem::size_of;
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
    /// More ranges to avoid than the caller's scratch space holds.
    #[error("{ranges} ranges in use, more than the {capacity} the stub can track")]
    TooManyRanges {
        /// Ranges needed.
        ranges: usize,
        /// Capacity.
        capacity: usize,
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
            return Err(LinuxBootError::BadInitSize {
                init_size,
                code: code_size,
            });
        }
        let pref = hdr.pref_address;
        Ok(Self {
            init_size,
            code_size,
            align: u64::from(align),
            pref_address: if pref == 0 { 0x10_0000 } else { pref },
            relocatable: hdr.relocatable_kernel != 0,
            above_4g: hdr
                .xload_flags()
                .contains(XLoadFlags::CAN_BE_LOADED_ABOVE_4G),
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
    let Some(end) = start.checked_add(size) else {
        return false;
    };
    let in_ram = e820.iter().any(|e| {
        let (addr, t) = (e.addr, e.type_);
        t == E820Type::RAM && addr <= start && e.end().is_some_and(|e| e >= end)
    });
    let reserved = e820.iter().any(|e| {
        let t = e.type_;
        t != E820Type::RAM
            && e.end()
                .is_some_and(|e_end| overlaps((e.addr, e_end), (start, end)))
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
            && start
                .checked_add(req.size)
                .is_some_and(|end| end <= req.limit)
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
        let Some(mut at) = align_up(ram.addr.max(req.min), req.align) else {
            continue;
        };
        // Each pass either succeeds, ends, or jumps past a blocker's end, so
        // the loop ends within (number of blockers + 1) passes.
        for _ in 0..=blockers().count() {
            let Some(end) = at.checked_add(req.size) else {
                break;
            };
            if end > ram_end || end > req.limit {
                break;
            }
            match blockers()
                .filter(|&b| overlaps(b, (at, end)))
                .map(|b| b.1)
                .max()
            {
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
    if pref_end.is_some_and(|end| end <= limit)
        && is_free(e820, avoid, needs.pref_address, needs.init_size)
    {
        return Ok(needs.pref_address);
    }
    let no_room = LinuxBootError::NoRoom {
        size: needs.init_size,
        align: needs.align,
    };
    if !needs.relocatable {
        return Err(no_room);
    }
    let req = Request {
        size: needs.init_size,
        align: needs.align,
        min: 0x10_0000,
        limit,
        preferred: None,
    };
    find_free(e820, avoid, &req).ok_or(no_room)
}

/// Where the stub puts things, from [`plan_boot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPlan {
    /// Load address of the protected-mode code (entry at `+ 0x200`).
    pub kernel: u64,
    /// Whether the code must be copied there (false: it already is).
    pub copy: bool,
    /// Address of the zero page, followed by the `SETUP_E820_EXT` node if
    /// any.
    pub zero_page: u64,
}

/// What [`plan_boot`] places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRequest {
    /// The kernel's needs.
    pub needs: KernelNeeds,
    /// Where the protected-mode code is now (start, end).
    pub code: (u64, u64),
    /// Bytes for the zero page plus the e820 extension node.
    pub zero_page_size: u64,
}

/// Lowest address for the zero page: clear of the real-mode IVT and BDA.
pub const ZERO_PAGE_MIN: u64 = 0x1_0000;

/// Plans a boot: the kernel runs where its code already is when that
/// address is aligned, acceptable (relocatable, or the preferred address)
/// and followed by `init_size` free bytes; otherwise it goes where
/// [`choose_kernel_address`] says, clear of its current copy too. The zero
/// page (and e820 node) then goes in the lowest free page-aligned range at
/// or above [`ZERO_PAGE_MIN`], clear of the kernel's `init_size` range.
///
/// `avoid` lists every range in use (modules, start_info and its tables,
/// the stub, its payload except the code itself, the command line), as
/// half-open ranges; `scratch` holds `avoid` plus two more ranges.
pub fn plan_boot(
    req: &BootRequest,
    e820: &[E820Entry],
    avoid: &[(u64, u64)],
    scratch: &mut [(u64, u64)],
) -> Result<BootPlan, LinuxBootError> {
    let needs = &req.needs;
    let n = avoid.len();
    let too_many = LinuxBootError::TooManyRanges {
        ranges: n.saturating_add(2),
        capacity: scratch.len(),
    };
    if scratch.len() < n.saturating_add(2) {
        return Err(too_many);
    }
    let limit = if needs.above_4g { u64::MAX } else { 1 << 32 };
    let at = req.code.0;
    let acceptable = needs.relocatable || at == needs.pref_address;
    let in_place = acceptable
        && at % needs.align.max(1) == 0
        && at
            .checked_add(needs.init_size)
            .is_some_and(|end| end <= limit)
        && is_free(e820, avoid, at, needs.init_size);
    let (kernel, copy) = if in_place {
        (at, false)
    } else {
        scratch[..n].copy_from_slice(avoid);
        scratch[n] = req.code;
        (choose_kernel_address(needs, e820, &scratch[..=n])?, true)
    };
    scratch[..n].copy_from_slice(avoid);
    scratch[n] = req.code;
    scratch[n + 1] = (kernel, kernel.saturating_add(needs.init_size));
    let zp = Request {
        size: req.zero_page_size,
        align: 0x1000,
        min: ZERO_PAGE_MIN,
        limit,
        preferred: None,
    };
    let zero_page = find_free(e820, &scratch[..n + 2], &zp).ok_or(LinuxBootError::NoRoom {
        size: req.zero_page_size,
        align: 0x1000,
    })?;
    Ok(BootPlan {
        kernel,
        copy,
        zero_page,
    })
}

/// A fixed-capacity list of half-open ranges in use (no allocator in a
/// guest).
#[derive(Debug, Clone)]
pub struct RangeList<const N: usize> {
    items: [(u64, u64); N],
    len: usize,
}

impl<const N: usize> Default for RangeList<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeList<N> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            items: [(0, 0); N],
            len: 0,
        }
    }

    /// Adds `start..start+size` (saturating at the end of the address
    /// space); empty ranges are skipped.
    pub fn push(&mut self, start: u64, size: u64) -> Result<(), LinuxBootError> {
        if size == 0 {
            return Ok(());
        }
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(LinuxBootError::TooManyRanges {
                ranges: self.len + 1,
                capacity: N,
            })?;
        *slot = (start, start.saturating_add(size));
        self.len += 1;
        Ok(())
    }

    /// The ranges added so far.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.items[..self.len]
    }
}

/// Adds every range a start_info occupies to `out`: the structure itself
/// (56 bytes, the version-1 size, whatever the version), the module list,
/// the memory-map table, the command line and each module's (with NUL),
/// the first 36 bytes at the RSDP address, and every module except the
/// one starting at `except` (the kernel, whose code may be run in place).
pub fn start_info_ranges<M: PhysRead + ?Sized, const N: usize>(
    view: &StartInfoView<'_, M>,
    except: Option<u64>,
    out: &mut RangeList<N>,
) -> Result<(), LinuxBootError> {
    let h = *view.header();
    out.push(view.addr(), size_of::<StartInfo>() as u64)?;
    let count = u64::from(view.module_count());
    out.push(
        h.modlist_paddr,
        count.saturating_mul(size_of::<ModlistEntry>() as u64),
    )?;
    if view.memmap_len() > 0 {
        let n = u64::from(view.memmap_len());
        out.push(
            h.memmap_paddr,
            n.saturating_mul(size_of::<MemmapEntry>() as u64),
        )?;
    }
    if let Some((addr, len)) = view.cmdline() {
        out.push(addr, u64::from(len) + 1)?;
    }
    if let Some(rsdp) = view.rsdp_paddr() {
        out.push(rsdp, RSDP_V2_LEN)?;
    }
    for m in view.modules() {
        if Some(m.entry.paddr) != except {
            out.push(m.entry.paddr, m.entry.size)?;
        }
        if let Some(len) = m.cmdline_len {
            out.push(m.entry.cmdline_paddr, u64::from(len) + 1)?;
        }
    }
    Ok(())
}

/// Bytes of an ACPI 2.0 RSDP.
pub const RSDP_V2_LEN: u64 = 36;

/// Where the initrd comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdSource {
    /// No initrd.
    None,
    /// This start_info module.
    Module(u32),
    /// Embedded by `pvh wrap`: (address, size).
    Embedded(u64, u64),
}

impl InitrdSource {
    /// For a kernel from the `pvh wrap` payload: the hypervisor's module 0
    /// (QEMU `-initrd`) wins over the embedded initrd.
    pub fn for_payload(embedded: Option<(u64, u64)>, module_count: u32) -> Self {
        match (module_count, embedded) {
            (0, Some((addr, size))) => Self::Embedded(addr, size),
            (0, None) => Self::None,
            _ => Self::Module(0),
        }
    }

    /// For a kernel that is module `kernel`: the module after it, if any.
    pub fn after_module(kernel: u32, module_count: u32) -> Self {
        match kernel.checked_add(1) {
            Some(next) if next < module_count => Self::Module(next),
            _ => Self::None,
        }
    }
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
        assert_eq!(
            choose_kernel_address(&needs(0x100_0000, true), &map, &[]),
            Ok(0x100_0000)
        );
    }

    #[test]
    fn relocates_past_modules_and_reserved_ranges() {
        let map = [
            ram(0, 0x9_fc00),
            ram(0x10_0000, 0x7ff0_0000),
            rsv(0x180_0000, 0x1000),
        ];
        // The module covers the preferred address; the reserved page is in
        // the next aligned slot; the one after must be chosen.
        let avoid = [(0x100_0000, 0x120_0000)];
        let got = choose_kernel_address(&needs(0x100_0000, true), &map, &avoid).unwrap();
        assert_eq!(got, 0x1a0_0000);
        assert!(is_free(&map, &avoid, got, 0x100_0000));
        // Not relocatable: no way out.
        assert_eq!(
            choose_kernel_address(&needs(0x100_0000, false), &map, &avoid),
            Err(LinuxBootError::NoRoom {
                size: 0x100_0000,
                align: 0x20_0000
            })
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

    fn req(code: u64) -> BootRequest {
        BootRequest {
            needs: needs(0x100_0000, true),
            code: (code, code + 0x80_0000),
            zero_page_size: 0x1000,
        }
    }

    #[test]
    fn boots_in_place_when_aligned_and_free() {
        let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0x7ff0_0000)];
        let mut scratch = [(0, 0); 8];
        // Payload header and initrd below the code.
        let avoid = [(0x20_0000, 0x30_0000), (0x10_0000, 0x12_0000)];
        let plan = plan_boot(&req(0x40_0000), &map, &avoid, &mut scratch).unwrap();
        assert_eq!(
            plan,
            BootPlan {
                kernel: 0x40_0000,
                copy: false,
                zero_page: 0x1_0000
            }
        );
    }

    #[test]
    fn copies_when_misaligned_or_not_free() {
        let map = [ram(0, 0x9_fc00), ram(0x10_0000, 0x7ff0_0000)];
        let mut scratch = [(0, 0); 8];
        // Misaligned code: goes to the preferred address.
        let plan = plan_boot(&req(0x41_0000), &map, &[], &mut scratch).unwrap();
        assert_eq!((plan.kernel, plan.copy), (0x100_0000, true));
        // The code at 16 MiB, but a module at 20 MiB is in its init_size
        // range: the kernel goes past the module and past its own copy
        // (code ends at 24 MiB, module at 20..22 MiB), at 24 MiB.
        let avoid = [(0x140_0000, 0x160_0000)];
        let plan = plan_boot(&req(0x100_0000), &map, &avoid, &mut scratch).unwrap();
        assert_eq!((plan.kernel, plan.copy), (0x180_0000, true));
        // The zero page avoids low reserved memory and the avoided ranges.
        let map2 = [ram(0, 0x1_1000), ram(0x10_0000, 0x7ff0_0000)];
        let avoid2 = [(0x1_0000, 0x1_1000)];
        let plan = plan_boot(&req(0x40_0000), &map2, &avoid2, &mut scratch).unwrap();
        assert_eq!(plan.zero_page, 0x10_0000);
    }

    #[test]
    fn plan_errors_name_the_problem() {
        let small = [ram(0, 0x9_fc00), ram(0x10_0000, 0x100_0000)];
        let mut scratch = [(0, 0); 8];
        assert_eq!(
            plan_boot(&req(0x41_0000), &small, &[], &mut scratch),
            Err(LinuxBootError::NoRoom {
                size: 0x100_0000,
                align: 0x20_0000
            })
        );
        let avoid = [(0, 1); 7];
        assert_eq!(
            plan_boot(&req(0x40_0000), &small, &avoid, &mut scratch),
            Err(LinuxBootError::TooManyRanges {
                ranges: 9,
                capacity: 8
            })
        );
    }

    #[test]
    fn range_list_is_bounded() {
        let mut l = RangeList::<2>::new();
        l.push(1, 0).unwrap();
        l.push(1, 2).unwrap();
        l.push(u64::MAX - 1, 10).unwrap();
        assert_eq!(l.as_slice(), &[(1, 3), (u64::MAX - 1, u64::MAX)]);
        assert_eq!(
            l.push(5, 5),
            Err(LinuxBootError::TooManyRanges {
                ranges: 3,
                capacity: 2
            })
        );
    }

    #[test]
    fn start_info_ranges_cover_every_part_but_the_kernel() {
        use crate::memory::SliceMemory;
        use crate::start_info::{MemmapType, SifFlags};
        use crate::writer::{ModuleSpec, Placement, StartInfoSpec, write_start_info};
        let modules = [
            ModuleSpec {
                paddr: 0x10_0000,
                size: 0x5000,
                cmdline: Some(b"kernel"),
            },
            ModuleSpec {
                paddr: 0x20_0000,
                size: 0x300,
                cmdline: None,
            },
        ];
        let memmap = [MemmapEntry::new(0, 0x4000_0000, MemmapType::RAM)];
        let spec = StartInfoSpec {
            version: 1,
            flags: SifFlags::empty(),
            cmdline: Some(b"console=ttyS0"),
            rsdp_paddr: 0xe_0000,
            modules: &modules,
            memmap: &memmap,
        };
        let mut mem = SliceMemory::new(0, vec![0u8; 0x30_0000]);
        let placement = Placement {
            start_info: 0x1000,
            modlist: 0x2000,
            memmap: 0x3000,
            strings: 0x4000,
        };
        write_start_info(&mut mem, &spec, &placement).unwrap();
        let view = StartInfoView::read(&mem, 0x1000).unwrap();
        let mut out = RangeList::<16>::new();
        start_info_ranges(&view, Some(0x10_0000), &mut out).unwrap();
        let r = out.as_slice();
        // Values from the layout above: 56-byte start_info, 2 x 32-byte
        // modules, 1 x 24-byte map entry, 36-byte RSDP, module 1.
        for want in [
            (0x1000, 0x1038),
            (0x2000, 0x2040),
            (0x3000, 0x3018),
            (0xe_0000, 0xe_0024),
            (0x20_0000, 0x20_0300),
        ] {
            assert!(r.contains(&want), "{want:x?} missing from {r:x?}");
        }
        // The kernel module itself is not in use (it may run in place) ...
        assert!(!r.iter().any(|&(s, _)| s == 0x10_0000), "{r:x?}");
        // ... but both command lines are, with their NULs.
        let (c, len) = view.cmdline().unwrap();
        assert!(r.contains(&(c, c + u64::from(len) + 1)));
        assert_eq!(len, 13);
        assert_eq!(r.len(), 7);
    }

    #[test]
    fn initrd_sources() {
        assert_eq!(
            InitrdSource::for_payload(Some((0x20_1000, 5)), 0),
            InitrdSource::Embedded(0x20_1000, 5)
        );
        assert_eq!(
            InitrdSource::for_payload(Some((0x20_1000, 5)), 1),
            InitrdSource::Module(0)
        );
        assert_eq!(InitrdSource::for_payload(None, 0), InitrdSource::None);
        assert_eq!(InitrdSource::after_module(0, 2), InitrdSource::Module(1));
        assert_eq!(InitrdSource::after_module(1, 2), InitrdSource::None);
        assert_eq!(
            InitrdSource::after_module(u32::MAX, u32::MAX),
            InitrdSource::None
        );
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
