//! The layout planner: decides every placement, checks that each lies in
//! usable RAM and that none overlaps another, and derives the memory map.
//!
//! Policy: page 0 holds the boot GDT and IDT; kernels go where they ask
//! (or per PHYS32_RELOC / the bzImage's alignment); modules go top-down
//! below 4 GiB (page-aligned, above 1 MiB, never over low memory); the
//! start_info block, zero page, stack and page tables go bottom-up from
//! 4 KiB, so they normally land below the ISA window.

use crate::cpu::EntryMode;
use crate::elf::{ElfImage, LoadSegment};
use crate::error::LoadError;
use crate::image::{KernelImage, unpack};
use crate::layout::{
    ACPI_REGION, FIRST_ALLOC, GDT_ADDR, GuestRam, HYPERVISOR_RESERVED, IDT_ADDR, MMIO_HOLE_END,
    PAGE_SIZE, align_up, overlaps, range,
};
use crate::plan::{BootConfig, BootPlan, BootProtocol, Module, Placement, Purpose, Relocation};
use core::ops::Range;
use pvh_bootparams::{BzImage, XLoadFlags};
use pvh_entry::writer::Sizes;
use pvh_entry::{ModuleSpec, StartInfoSpec};
use std::sync::Arc;

/// 1 MiB: the lowest address for kernels and modules.
const ONE_MIB: u64 = 0x10_0000;
/// 4 GiB.
const FOUR_GIB: u64 = MMIO_HOLE_END;
/// Bytes of the Linux64 boot stack.
pub(crate) const STACK_SIZE: u64 = PAGE_SIZE;

/// Where a PVH ELF's bytes come from at load time.
#[derive(Debug, Clone)]
pub(crate) enum ElfSource {
    /// `BootConfig::kernel`.
    Kernel,
    /// `BootConfig::stub`.
    Stub,
    /// The vmlinux unpacked from the bzImage at planning time.
    Unpacked(Arc<[u8]>),
}

/// How the kernel is written.
#[derive(Debug, Clone)]
pub(crate) enum KernelLoad {
    /// PT_LOAD segments at `gpa`.
    Elf {
        source: ElfSource,
        segments: Vec<(LoadSegment, u64)>,
    },
    /// bzImage protected-mode code at `addr`.
    BzImage { addr: u64 },
}

/// What `load` needs beyond the public plan.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub kernel: KernelLoad,
    /// Address of every module (stub case: module 0 is the bzImage), 0 if
    /// empty.
    pub modules: Vec<u64>,
    pub start_info: pvh_entry::Placement,
    pub ram: GuestRam,
    /// Linux64: (stack top, page-table bytes).
    pub stack_top: u64,
    pub page_tables_len: u64,
    /// Input lengths, checked again at load time.
    pub kernel_len: u64,
    pub stub_len: u64,
    pub module_lens: Vec<u64>,
    pub cmdline_len: u64,
}

/// Placements made so far, and the search for free RAM.
pub(crate) struct Planner<'r> {
    ram: &'r GuestRam,
    usable: Vec<Range<u64>>,
    pub placements: Vec<Placement>,
}

impl<'r> Planner<'r> {
    pub fn new(ram: &'r GuestRam) -> Result<Self, LoadError> {
        let mut p = Self {
            ram,
            usable: ram.usable(),
            placements: vec![Placement {
                purpose: Purpose::Hypervisor,
                start: HYPERVISOR_RESERVED.start,
                len: HYPERVISOR_RESERVED.end - HYPERVISOR_RESERVED.start,
            }],
        };
        p.place(Purpose::Gdt, GDT_ADDR, crate::gdt::GDT_SIZE)?;
        p.place(Purpose::Idt, IDT_ADDR, crate::gdt::IDT_SIZE)?;
        Ok(p)
    }

    /// Ok if `r` is in usable RAM and overlaps no placement; otherwise the
    /// error naming why.
    pub fn check_free(&self, purpose: Purpose, r: &Range<u64>) -> Result<(), LoadError> {
        if !self.ram.is_usable(r) {
            return Err(LoadError::NotInRam {
                purpose,
                start: r.start,
                end: r.end,
            });
        }
        if let Some(p) = self.placements.iter().find(|p| overlaps(&p.range(), r)) {
            return Err(LoadError::Overlap {
                first: purpose,
                first_start: r.start,
                first_end: r.end,
                second: p.purpose,
                second_start: p.start,
                second_end: p.start + p.len,
            });
        }
        Ok(())
    }

    /// Places `purpose` at `start` (checked).
    pub fn place(&mut self, purpose: Purpose, start: u64, len: u64) -> Result<u64, LoadError> {
        let r = range("placement", start, len)?;
        self.check_free(purpose, &r)?;
        self.placements.push(Placement {
            purpose,
            start,
            len,
        });
        Ok(start)
    }

    /// Reserves `size` bytes (page-rounded, at least one page) at the start
    /// of [`ACPI_REGION`] for the caller's ACPI tables. The region is not
    /// usable RAM (it is the BIOS area of the ISA window), so only its size
    /// and overlaps are checked.
    pub fn reserve_acpi(&mut self, size: u64) -> Result<Range<u64>, LoadError> {
        let region_len = ACPI_REGION.end - ACPI_REGION.start;
        let no_space = LoadError::NoSpace {
            purpose: Purpose::Acpi,
            size,
            align: PAGE_SIZE,
            min: ACPI_REGION.start,
            max: ACPI_REGION.end,
        };
        let len = align_up(size.max(1), PAGE_SIZE).ok_or(no_space.clone())?;
        if len > region_len {
            return Err(no_space);
        }
        let r = range("ACPI region", ACPI_REGION.start, len)?;
        if let Some(p) = self.placements.iter().find(|p| overlaps(&p.range(), &r)) {
            return Err(LoadError::Overlap {
                first: Purpose::Acpi,
                first_start: r.start,
                first_end: r.end,
                second: p.purpose,
                second_start: p.start,
                second_end: p.start + p.len,
            });
        }
        self.placements.push(Placement {
            purpose: Purpose::Acpi,
            start: r.start,
            len,
        });
        Ok(r)
    }

    /// Free gaps of usable RAM, ascending.
    fn gaps(&self) -> Vec<Range<u64>> {
        let mut taken: Vec<Range<u64>> = self.placements.iter().map(Placement::range).collect();
        taken.sort_by_key(|r| r.start);
        let mut out = Vec::new();
        for u in &self.usable {
            let mut cursor = u.start;
            for t in taken.iter().filter(|t| overlaps(t, u)) {
                if t.start > cursor {
                    out.push(cursor..t.start);
                }
                cursor = cursor.max(t.end);
            }
            if cursor < u.end {
                out.push(cursor..u.end);
            }
        }
        out
    }

    /// The lowest (or highest, `top_down`) `align`-aligned address `a` with
    /// `a..a + size` free and inside `min..max`.
    pub fn find(&self, size: u64, align: u64, min: u64, max: u64, top_down: bool) -> Option<u64> {
        let fit = |g: &Range<u64>| -> Option<u64> {
            let lo = g.start.max(min);
            let hi = g.end.min(max);
            if top_down {
                let a = hi.checked_sub(size)? & !(align - 1);
                (a >= lo && a.checked_add(size)? <= hi).then_some(a)
            } else {
                let a = align_up(lo, align)?;
                (a.checked_add(size)? <= hi).then_some(a)
            }
        };
        let gaps = self.gaps();
        if top_down {
            gaps.iter().rev().find_map(fit)
        } else {
            gaps.iter().find_map(fit)
        }
    }

    /// Finds and places.
    pub fn alloc(
        &mut self,
        purpose: Purpose,
        size: u64,
        align: u64,
        min: u64,
        max: u64,
        top_down: bool,
    ) -> Result<u64, LoadError> {
        let at = self
            .find(size, align, min, max, top_down)
            .ok_or(LoadError::NoSpace {
                purpose,
                size,
                align,
                min,
                max,
            })?;
        self.place(purpose, at, size)
    }
}

/// Checks that no two placements overlap (sorted by start, each against
/// the furthest end seen so far).
pub fn check_disjoint(placements: &[Placement]) -> Result<(), LoadError> {
    let mut sorted: Vec<&Placement> = placements.iter().filter(|p| p.len > 0).collect();
    sorted.sort_by_key(|p| p.start);
    let mut furthest: Option<&Placement> = None;
    for p in sorted {
        if let Some(f) = furthest {
            if overlaps(&f.range(), &p.range()) {
                return Err(LoadError::Overlap {
                    first: f.purpose,
                    first_start: f.start,
                    first_end: f.start + f.len,
                    second: p.purpose,
                    second_start: p.start,
                    second_end: p.start + p.len,
                });
            }
        }
        if furthest.is_none_or(|f| p.range().end > f.range().end) {
            furthest = Some(p);
        }
    }
    Ok(())
}

/// The modules start_info lists: for a bzImage booted through the stub,
/// the bzImage first, then the caller's.
pub(crate) fn module_list<'a>(config: &BootConfig<'a>) -> Vec<Module<'a>> {
    let mut list = Vec::with_capacity(config.modules.len() + 1);
    if config.stub.is_some() && config.protocol == BootProtocol::Pvh {
        list.push(Module {
            bytes: config.kernel,
            cmdline: None,
            above_4g: false,
        });
    }
    list.extend_from_slice(&config.modules);
    list
}

/// The start_info's module entries.
pub(crate) fn module_specs<'a>(modules: &[Module<'a>], addrs: &[u64]) -> Vec<ModuleSpec<'a>> {
    modules
        .iter()
        .zip(addrs)
        .map(|(m, &paddr)| ModuleSpec {
            paddr,
            size: m.bytes.len() as u64,
            cmdline: m.cmdline,
        })
        .collect()
}

/// The start_info the plan sizes and `load` writes: version 1, with the
/// memory map.
pub(crate) fn start_info_spec<'a>(
    config: &BootConfig<'a>,
    rsdp: Option<u64>,
    modules: &'a [ModuleSpec<'a>],
    memmap: &'a [pvh_entry::MemmapEntry],
) -> StartInfoSpec<'a> {
    StartInfoSpec {
        version: 1,
        flags: config.flags,
        cmdline: Some(config.cmdline),
        rsdp_paddr: rsdp.unwrap_or(0),
        modules,
        memmap,
    }
}

struct ElfPlaced {
    segments: Vec<(LoadSegment, u64)>,
    entry: u64,
    delta: i64,
}

fn place_elf(
    p: &mut Planner<'_>,
    elf: &ElfImage<'_>,
    how: Relocation,
) -> Result<ElfPlaced, LoadError> {
    let span = elf.span();
    let len = span.end - span.start;
    let first = Purpose::Segment(elf.segments.first().map_or(0, |s| s.index));
    // A 32-bit entry without paging reaches only the first 4 GiB.
    let fits_at = |p: &Planner<'_>, base: u64| -> Result<(), LoadError> {
        for s in &elf.segments {
            let r = range("ELF segment", base + (s.paddr - span.start), s.memsz)?;
            if r.end > FOUR_GIB {
                return Err(LoadError::NotInRam {
                    purpose: Purpose::Segment(s.index),
                    start: r.start,
                    end: r.end,
                });
            }
            p.check_free(Purpose::Segment(s.index), &r)?;
        }
        Ok(())
    };
    let not_relocatable = LoadError::NotRelocatable {
        start: span.start,
        end: span.end,
    };
    let search = |p: &Planner<'_>| -> Result<u64, LoadError> {
        let r = elf.reloc.ok_or(not_relocatable.clone())?;
        let align = u64::from(r.align).max(1);
        let min = u64::from(r.min_addr).max(ONE_MIB);
        let max = (u64::from(r.max_addr) + 1).min(FOUR_GIB);
        p.find(len, align, min, max, false)
            .ok_or(LoadError::NoSpace {
                purpose: first,
                size: len,
                align,
                min,
                max,
            })
    };
    let base = match how {
        Relocation::Preferred => match fits_at(p, span.start) {
            Ok(()) => span.start,
            Err(e) if elf.reloc.is_none() => return Err(e),
            Err(_) => search(p)?,
        },
        Relocation::Anywhere => search(p)?,
        Relocation::At(addr) => {
            let r = elf.reloc.ok_or(not_relocatable.clone())?;
            let bad = LoadError::BadLoadAddress {
                addr,
                align: u64::from(r.align),
                min: u64::from(r.min_addr),
                max: u64::from(r.max_addr),
            };
            let last = addr.checked_add(len - 1).ok_or(bad.clone())?;
            if addr % u64::from(r.align) != 0
                || addr < u64::from(r.min_addr)
                || last > u64::from(r.max_addr)
            {
                return Err(bad);
            }
            fits_at(p, addr)?;
            addr
        }
    };
    let mut segments = Vec::with_capacity(elf.segments.len());
    for s in &elf.segments {
        let gpa = p.place(
            Purpose::Segment(s.index),
            base + (s.paddr - span.start),
            s.memsz,
        )?;
        segments.push((*s, gpa));
    }
    Ok(ElfPlaced {
        segments,
        entry: base + (u64::from(elf.entry) - span.start),
        // Two's complement: `entry + delta` (mod 2^64) is the new address.
        delta: base.wrapping_sub(span.start) as i64,
    })
}

fn place_bzimage(p: &mut Planner<'_>, bz: &BzImage<'_>) -> Result<u64, LoadError> {
    bz.check_64bit_boot()?;
    let hdr = bz.header();
    let size = u64::from(hdr.init_size).max(bz.kernel().len() as u64);
    let relocatable = { hdr.relocatable_kernel } != 0;
    let ka = u64::from(hdr.kernel_alignment);
    let align = if ka.is_power_of_two() {
        ka.max(PAGE_SIZE)
    } else {
        0x20_0000
    };
    let pref_address = hdr.pref_address;
    let pref = match pref_address {
        0 => ONE_MIB,
        a => a,
    };
    let at_pref = range("kernel", pref, size).and_then(|r| p.check_free(Purpose::Kernel, &r));
    if at_pref.is_ok() && (!relocatable || pref % align == 0) {
        return p.place(Purpose::Kernel, pref, size);
    }
    if !relocatable {
        return at_pref.map(|()| pref);
    }
    match p.find(size, align, ONE_MIB, FOUR_GIB, false) {
        Some(a) => p.place(Purpose::Kernel, a, size),
        None => p.alloc(Purpose::Kernel, size, align, ONE_MIB, u64::MAX, false),
    }
}

/// Decides where everything goes for `config` in `ram`, checks it, and
/// returns the plan. Writes nothing.
pub fn plan(ram: &GuestRam, config: &BootConfig<'_>) -> Result<BootPlan, LoadError> {
    let mut p = Planner::new(ram)?;
    let acpi = config.acpi.map(|size| p.reserve_acpi(size)).transpose()?;
    let rsdp = acpi.as_ref().map(|r| r.start).or(config.rsdp);
    let image = KernelImage::parse(config.kernel)?;
    let wrong = |protocol: BootProtocol| LoadError::WrongImage {
        image: image.kind(),
        protocol: protocol.name(),
    };
    let mut linux_bz = None;
    let (mode, kernel, entry, delta) = match (config.protocol, &image, config.stub) {
        (BootProtocol::Pvh, KernelImage::BzImage(_), Some(stub)) => {
            let elf = ElfImage::parse(stub)?;
            let e = place_elf(&mut p, &elf, config.relocation)?;
            let k = KernelLoad::Elf {
                source: ElfSource::Stub,
                segments: e.segments,
            };
            (EntryMode::Protected32, k, e.entry, e.delta)
        }
        (BootProtocol::Pvh, KernelImage::PvhElf(elf), None) => {
            let e = place_elf(&mut p, elf, config.relocation)?;
            let k = KernelLoad::Elf {
                source: ElfSource::Kernel,
                segments: e.segments,
            };
            (EntryMode::Protected32, k, e.entry, e.delta)
        }
        (BootProtocol::PvhUnpack, KernelImage::BzImage(bz), None) => {
            let vmlinux: Arc<[u8]> = unpack(bz)?.into();
            let elf = ElfImage::parse(&vmlinux)?;
            let e = place_elf(&mut p, &elf, config.relocation)?;
            let k = KernelLoad::Elf {
                source: ElfSource::Unpacked(vmlinux.clone()),
                segments: e.segments,
            };
            (EntryMode::Protected32, k, e.entry, e.delta)
        }
        (BootProtocol::Linux64, KernelImage::BzImage(bz), None) => {
            let addr = place_bzimage(&mut p, bz)?;
            linux_bz = Some(bz);
            (
                EntryMode::Long64,
                KernelLoad::BzImage { addr },
                addr + 0x200,
                0,
            )
        }
        (protocol, _, _) => return Err(wrong(protocol)),
    };

    if let Some(bz) = linux_bz {
        let hdr = bz.header();
        // cmdline_size exists from protocol 2.06; older kernels take 255.
        let max = if { hdr.version } >= 0x0206 {
            u64::from(hdr.cmdline_size)
        } else {
            255
        };
        if config.cmdline.len() as u64 > max {
            return Err(LoadError::CmdlineTooLong {
                len: config.cmdline.len(),
                max,
            });
        }
    }

    let modules = module_list(config);
    let mut module_addrs = Vec::with_capacity(modules.len());
    for (i, m) in modules.iter().enumerate() {
        let len = m.bytes.len() as u64;
        if len == 0 {
            module_addrs.push(0);
            continue;
        }
        let mut max = if m.above_4g { u64::MAX } else { FOUR_GIB };
        if let (Some(bz), 0) = (linux_bz, i) {
            let hdr = bz.header();
            let high_ok = m.above_4g
                && hdr
                    .xload_flags()
                    .contains(XLoadFlags::CAN_BE_LOADED_ABOVE_4G);
            let limit = u64::from(hdr.initrd_addr_max);
            if !high_ok && limit != 0 {
                max = max.min(limit + 1);
            }
        }
        let size = align_up(len, PAGE_SIZE).ok_or(LoadError::AddressWraps {
            what: "module",
            start: 0,
            len,
        })?;
        let at = p.alloc(Purpose::Module(i), size, PAGE_SIZE, ONE_MIB, max, true)?;
        // The placement covers the page-rounded size; the module is `len`.
        if let Some(last) = p.placements.last_mut() {
            last.len = len;
        }
        module_addrs.push(at);
    }

    let memmap = ram.memmap();
    let specs = module_specs(&modules, &module_addrs);
    let spec = start_info_spec(config, rsdp, &specs, &memmap);
    let total = Sizes::of(&spec)?
        .packed_total()
        .ok_or(LoadError::AddressWraps {
            what: "start_info block",
            start: 0,
            len: u64::MAX,
        })?;
    let si = p.alloc(Purpose::StartInfo, total, 8, FIRST_ALLOC, FOUR_GIB, false)?;
    let (si_placement, _) = pvh_entry::Placement::packed(si, &spec)?;

    let (mut zero_page, mut page_tables, mut stack_top, mut pt_len) = (None, None, 0, 0);
    if mode == EntryMode::Long64 {
        zero_page = Some(p.alloc(
            Purpose::ZeroPage,
            PAGE_SIZE,
            PAGE_SIZE,
            FIRST_ALLOC,
            FOUR_GIB,
            false,
        )?);
        stack_top = p.alloc(
            Purpose::Stack,
            STACK_SIZE,
            PAGE_SIZE,
            FIRST_ALLOC,
            FOUR_GIB,
            false,
        )? + STACK_SIZE;
        // Identity-map everything placed (at least 4 GiB) with 2 MiB pages:
        // PML4, one PDPT, one PD per GiB.
        let top = p
            .placements
            .iter()
            .filter(|pl| pl.purpose != Purpose::Hypervisor)
            .map(|pl| pl.start + pl.len)
            .max()
            .unwrap_or(0)
            .max(FOUR_GIB);
        let map_end = align_up(top, 1 << 30).ok_or(LoadError::IdentityMapTooLarge { end: top })?;
        let pds = map_end >> 30;
        if pds > 512 {
            return Err(LoadError::IdentityMapTooLarge { end: top });
        }
        pt_len = (2 + pds) * PAGE_SIZE;
        page_tables = Some(p.alloc(
            Purpose::PageTables,
            pt_len,
            PAGE_SIZE,
            FIRST_ALLOC,
            FOUR_GIB,
            false,
        )?);
    }

    let mut placements = p.placements;
    check_disjoint(&placements)?;
    for pl in placements
        .iter()
        .filter(|pl| pl.purpose != Purpose::Hypervisor)
    {
        // The ACPI region is backed memory the map calls RESERVED.
        let ok = match pl.purpose {
            Purpose::Acpi => ram.backs(&pl.range()),
            _ => ram.is_usable(&pl.range()),
        };
        if !ok {
            return Err(LoadError::NotInRam {
                purpose: pl.purpose,
                start: pl.start,
                end: pl.start + pl.len,
            });
        }
    }
    placements.sort_by_key(|pl| pl.start);
    Ok(BootPlan {
        mode,
        entry,
        start_info: si,
        zero_page,
        page_tables,
        relocation_delta: delta,
        placements,
        memmap,
        acpi,
        rsdp,
        detail: Detail {
            kernel,
            modules: module_addrs,
            start_info: si_placement,
            ram: ram.clone(),
            stack_top,
            page_tables_len: pt_len,
            kernel_len: config.kernel.len() as u64,
            stub_len: config.stub.map_or(0, |s| s.len() as u64),
            module_lens: modules.iter().map(|m| m.bytes.len() as u64).collect(),
            cmdline_len: config.cmdline.len() as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pl(purpose: Purpose, start: u64, len: u64) -> Placement {
        Placement {
            purpose,
            start,
            len,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// `overlaps` against its definition: some byte is in both.
        #[test]
        fn overlaps_matches_brute_force(a in 0u64..40, al in 0u64..12, b in 0u64..40, bl in 0u64..12) {
            let (ra, rb) = (a..a + al, b..b + bl);
            let brute = (0..64u64).any(|x| ra.contains(&x) && rb.contains(&x));
            proptest::prop_assert_eq!(crate::layout::overlaps(&ra, &rb), brute);
            proptest::prop_assert_eq!(crate::layout::overlaps(&rb, &ra), brute);
        }

        /// `check_disjoint` against all pairs.
        #[test]
        fn check_disjoint_matches_all_pairs(v in proptest::collection::vec((0u64..200, 0u64..30), 0..8)) {
            let list: Vec<Placement> = v.iter().enumerate().map(|(i, &(s, l))| pl(Purpose::Module(i), s, l)).collect();
            let any_pair = list.iter().enumerate().any(|(i, a)| {
                list[i + 1..].iter().any(|b| crate::layout::overlaps(&a.range(), &b.range()))
            });
            proptest::prop_assert_eq!(check_disjoint(&list).is_err(), any_pair);
        }
    }

    #[test]
    fn disjoint_placements_pass() {
        let v = [
            pl(Purpose::Gdt, 0x500, 0x30),
            pl(Purpose::Idt, 0x530, 8),
            pl(Purpose::Kernel, 0x10_0000, 0x1000),
        ];
        assert!(check_disjoint(&v).is_ok());
    }

    #[test]
    fn overlap_is_found_even_behind_a_long_range() {
        // The kernel spans past the stack; the module overlaps the kernel,
        // not its sorted neighbour.
        let v = [
            pl(Purpose::Kernel, 0x1000, 0x10_000),
            pl(Purpose::Stack, 0x2000, 0x1000),
            pl(Purpose::Module(0), 0x8000, 0x1000),
        ];
        match check_disjoint(&v) {
            Err(LoadError::Overlap { first, second, .. }) => {
                assert_eq!((first, second), (Purpose::Kernel, Purpose::Stack));
            }
            other => panic!("{other:?}"),
        }
        let v = [
            pl(Purpose::Kernel, 0x1000, 0x10_000),
            pl(Purpose::Module(0), 0x8000, 0x1000),
        ];
        assert!(matches!(
            check_disjoint(&v),
            Err(LoadError::Overlap {
                second: Purpose::Module(0),
                ..
            })
        ));
    }

    #[test]
    fn empty_placements_never_overlap() {
        let v = [
            pl(Purpose::Kernel, 0x1000, 0x1000),
            pl(Purpose::Module(0), 0x1800, 0),
        ];
        assert!(check_disjoint(&v).is_ok());
    }

    #[test]
    fn allocator_respects_alignment_bounds_and_taken_ranges() {
        let ram = GuestRam::new(16 << 20).unwrap();
        let mut p = Planner::new(&ram).unwrap();
        let a = p
            .alloc(Purpose::Kernel, 0x3000, 0x20_0000, ONE_MIB, FOUR_GIB, false)
            .unwrap();
        assert_eq!(a, 0x20_0000);
        let b = p
            .alloc(
                Purpose::Module(0),
                0x1800,
                PAGE_SIZE,
                ONE_MIB,
                FOUR_GIB,
                true,
            )
            .unwrap();
        assert_eq!(b, (16 << 20) - 0x2000);
        let c = p
            .alloc(Purpose::StartInfo, 0x100, 8, FIRST_ALLOC, FOUR_GIB, false)
            .unwrap();
        assert_eq!(c, FIRST_ALLOC);
        // The ISA window is never handed out.
        let d = p
            .alloc(
                Purpose::Stack,
                0xa_0000,
                PAGE_SIZE,
                FIRST_ALLOC,
                FOUR_GIB,
                false,
            )
            .unwrap();
        assert_eq!(d, ONE_MIB);
        assert!(matches!(
            p.alloc(Purpose::ZeroPage, 32 << 20, PAGE_SIZE, 0, FOUR_GIB, false),
            Err(LoadError::NoSpace {
                size: 0x200_0000,
                ..
            })
        ));
        assert!(matches!(
            p.place(Purpose::ZeroPage, 0x20_1000, 0x1000),
            Err(LoadError::Overlap {
                second: Purpose::Kernel,
                ..
            })
        ));
        assert!(matches!(
            p.place(Purpose::ZeroPage, 0xa_0000, 0x1000),
            Err(LoadError::NotInRam { .. })
        ));
    }
}
