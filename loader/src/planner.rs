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
use crate::image::{KernelImage, unpack_within};
use crate::layout::{
    ACPI_REGION, FIRST_ALLOC, GDT_ADDR, GuestRam, IDT_ADDR, ISA_WINDOW, MP_TABLE_ADDR, PAGE_SIZE,
    align_up, overlaps, range,
};
use crate::plan::{BootConfig, BootPlan, BootProtocol, Module, Placement, Purpose, Relocation};
use core::ops::Range;
use pvh_bootparams::{E820Entry, ZERO_PAGE_SIZE};
use pvh_entry::linux::{self, InitrdRequest, KernelNeeds, LinuxPlacement, LinuxRequest};
use pvh_entry::machine::{FOUR_GIB, ONE_MIB};
use pvh_entry::paging::{PageSize, tables_for};
use pvh_entry::writer::Sizes;
use pvh_entry::zeropage::{e820_ext_size, e820_type};
use pvh_entry::{ModuleSpec, StartInfoSpec};
use std::sync::Arc;

/// Bytes of the Linux64 boot stack.
pub(crate) const STACK_SIZE: u64 = PAGE_SIZE;
/// The highest address the Linux64 identity map covers (one PDPT).
const IDENTITY_MAP_MAX: u64 = 512 << 30;

/// Where a PVH ELF's bytes come from at load time.
#[derive(Debug, Clone)]
pub(crate) enum ElfSource {
    /// `BootConfig::kernel`.
    Kernel,
    /// `BootConfig::stub`.
    Stub,
    /// The vmlinux unpacked from the bzImage at planning time.
    Unpacked(Arc<Vec<u8>>),
}

/// How the kernel is written.
#[derive(Debug, Clone)]
pub(crate) enum KernelLoad {
    /// PT_LOAD segments at `gpa`.
    Elf {
        source: ElfSource,
        segments: Vec<(LoadSegment, u64)>,
    },
    /// bzImage protected-mode code, where the Linux boot policy put it.
    BzImage { placement: LinuxPlacement },
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
    /// Linux64: stack top, page-table bytes, and the top of the identity
    /// map.
    pub stack_top: u64,
    pub page_tables_len: u64,
    pub identity_top: u64,
}

/// Placements made so far, and the search for free RAM.
pub(crate) struct Planner {
    usable: Vec<Range<u64>>,
    pub placements: Vec<Placement>,
}

impl Planner {
    pub fn new(ram: &GuestRam) -> Result<Self, LoadError> {
        let mut p = Self {
            usable: ram.usable(),
            placements: ram
                .reserved()
                .iter()
                .enumerate()
                .map(|(i, r)| Placement {
                    purpose: Purpose::Reserved(i),
                    start: r.range.start,
                    len: r.range.end - r.range.start,
                })
                .collect(),
        };
        p.place(Purpose::Gdt, GDT_ADDR, crate::gdt::GDT_SIZE)?;
        p.place(Purpose::Idt, IDT_ADDR, crate::gdt::IDT_SIZE)?;
        Ok(p)
    }

    /// Ok if `r` is in usable RAM and overlaps no placement; otherwise the
    /// error naming why.
    pub fn check_free(&self, purpose: Purpose, r: &Range<u64>) -> Result<(), LoadError> {
        if !self.usable.iter().any(|u| crate::layout::contains(u, r)) {
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
        self.reserve_firmware(Purpose::Acpi, ACPI_REGION, size)
    }

    /// Reserves `size` bytes (page-rounded, at least one page) at
    /// [`MP_TABLE_ADDR`] for the caller's MP table, up to the end of the
    /// ISA window; like [`Planner::reserve_acpi`], not usable RAM.
    pub fn reserve_mp_table(&mut self, size: u64) -> Result<Range<u64>, LoadError> {
        self.reserve_firmware(Purpose::MpTable, MP_TABLE_ADDR..ISA_WINDOW.end, size)
    }

    /// Reserves `size` bytes (page-rounded) at the start of `window`, a
    /// range of the ISA window the caller's firmware tables go into.
    fn reserve_firmware(
        &mut self,
        purpose: Purpose,
        window: Range<u64>,
        size: u64,
    ) -> Result<Range<u64>, LoadError> {
        let region_len = window.end - window.start;
        let no_space = LoadError::NoSpace {
            purpose,
            size,
            align: PAGE_SIZE,
            min: window.start,
            max: window.end,
        };
        let len = align_up(size.max(1), PAGE_SIZE).ok_or(no_space.clone())?;
        if len > region_len {
            return Err(no_space);
        }
        let r = range("firmware table region", window.start, len)?;
        if let Some(p) = self.placements.iter().find(|p| overlaps(&p.range(), &r)) {
            return Err(LoadError::Overlap {
                first: purpose,
                first_start: r.start,
                first_end: r.end,
                second: p.purpose,
                second_start: p.start,
                second_end: p.start + p.len,
            });
        }
        self.placements.push(Placement {
            purpose,
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
/// the bzImage first (its command line carries the stub's subarch option
/// when the policy is not the default, see
/// `pvh_entry::linux::stub::options`), then the caller's.
pub(crate) fn module_list<'a>(config: &BootConfig<'a>) -> Vec<Module<'a>> {
    let mut list = Vec::with_capacity(config.modules.len() + 1);
    if stub_path(config) {
        list.push(
            Module::new(config.kernel.image()).cmdline(match config.kernel.subarch() {
                pvh_entry::SubarchPolicy::Pc => None,
                policy => Some(linux::stub::option_for(policy).as_bytes()),
            }),
        );
    }
    list.extend_from_slice(&config.modules);
    list
}

/// Whether `config` boots a bzImage through the stub.
fn stub_path(config: &BootConfig<'_>) -> bool {
    config.kernel.stub_image().is_some() && config.kernel.protocol() == BootProtocol::Pvh
}

/// The start_info's module entries.
pub(crate) fn module_specs<'a>(modules: &[Module<'a>], addrs: &[u64]) -> Vec<ModuleSpec<'a>> {
    modules
        .iter()
        .zip(addrs)
        .map(|(m, &paddr)| ModuleSpec::new(paddr, m.bytes.len() as u64).cmdline(m.cmdline))
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
    StartInfoSpec::new(1)
        .flags(config.flags)
        .cmdline(Some(config.cmdline))
        .rsdp_paddr(rsdp.unwrap_or(0))
        .modules(modules)
        .memmap(memmap)
}

struct ElfPlaced {
    segments: Vec<(LoadSegment, u64)>,
    entry: u64,
    delta: i64,
}

fn place_elf(p: &mut Planner, elf: &ElfImage<'_>, how: Relocation) -> Result<ElfPlaced, LoadError> {
    let span = elf.span();
    let len = span.end - span.start;
    let first = Purpose::Segment(elf.segments.first().map_or(0, |s| s.index));
    // A 32-bit entry without paging reaches only the first 4 GiB.
    let fits_at = |p: &Planner, base: u64| -> Result<(), LoadError> {
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
    let search = |p: &Planner| -> Result<u64, LoadError> {
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
    // Every segment was checked free at `base` (or lies in the free range
    // the search found), and the scanner checked them disjoint: record
    // them without checking each against all the others again, which is
    // quadratic in the number of program headers. `check_disjoint` checks
    // the whole plan once at the end.
    let mut segments = Vec::with_capacity(elf.segments.len());
    for s in &elf.segments {
        let gpa = base + (s.paddr - span.start);
        p.placements.push(Placement {
            purpose: Purpose::Segment(s.index),
            start: gpa,
            len: s.memsz,
        });
        segments.push((*s, gpa));
    }
    Ok(ElfPlaced {
        segments,
        entry: base + (u64::from(elf.entry) - span.start),
        // Two's complement: `entry + delta` (mod 2^64) is the new address.
        delta: base.wrapping_sub(span.start) as i64,
    })
}

/// The memory map as the e820 table the Linux boot policy searches.
fn e820_of(memmap: &[pvh_entry::MemmapEntry]) -> Vec<E820Entry> {
    memmap
        .iter()
        .map(|e| E820Entry::new(e.addr, e.size, e820_type(e.type_)))
        .collect()
}

/// Places a Linux 64-bit boot with the one policy
/// (`pvh_entry::linux::place`): kernel, initrd (module 0) and zero page,
/// clear of everything placed so far, and records the placements.
fn place_linux(
    p: &mut Planner,
    needs: &KernelNeeds,
    initrd: Option<&Module<'_>>,
    cmdline: (u64, u64),
    memmap: &[pvh_entry::MemmapEntry],
) -> Result<LinuxPlacement, LoadError> {
    let e820 = e820_of(memmap);
    let ext = e820
        .len()
        .saturating_sub(pvh_bootparams::E820_MAX_ENTRIES_ZEROPAGE);
    let zero_page_size = ZERO_PAGE_SIZE as u64 + if ext == 0 { 0 } else { e820_ext_size(ext) };
    let avoid: Vec<(u64, u64)> = p
        .placements
        .iter()
        .map(|pl| (pl.start, pl.start.saturating_add(pl.len)))
        .collect();
    let mut scratch = vec![(0, 0); avoid.len() + linux::PLACE_EXTRA_RANGES];
    // The initrd's headroom goes with it, inside the same limits.
    let initrd_request = match initrd {
        Some(m) => InitrdRequest::Place {
            size: with_headroom(m)?,
            allow_high: m.above_4g,
        },
        None => InitrdRequest::None,
    };
    let request = LinuxRequest::new(*needs, zero_page_size, initrd_request).cmdline(Some(cmdline));
    let mut placement = linux::place(&request, &e820, &avoid, &mut scratch)?;
    p.place(Purpose::Kernel, placement.runtime, placement.window)?;
    if let (Some((addr, _)), Some(m)) = (placement.initrd, initrd) {
        // The policy placed initrd and headroom as one block; the zero
        // page's ramdisk is the initrd alone.
        let len = m.bytes.len() as u64;
        placement.initrd = Some((addr, len));
        p.place(Purpose::Module(0), addr, len)?;
        place_headroom(p, 0, addr, m);
    }
    p.place(Purpose::ZeroPage, placement.zero_page, zero_page_size)?;
    Ok(placement)
}

/// Decides where everything goes for `config` in `ram`, checks it, and
/// returns the plan. Writes nothing.
pub fn plan<'a>(ram: &GuestRam, config: &BootConfig<'a>) -> Result<BootPlan<'a>, LoadError> {
    let mut p = Planner::new(ram)?;
    let acpi = config.acpi.map(|size| p.reserve_acpi(size)).transpose()?;
    let rsdp = acpi.as_ref().map(|r| r.start).or(config.rsdp);
    let mp_table = config
        .mp_table
        .map(|size| p.reserve_mp_table(size))
        .transpose()?;
    let image = KernelImage::parse(config.kernel.image())?;
    let wrong = |protocol: BootProtocol| LoadError::WrongImage {
        image: image.kind(),
        protocol: protocol.name(),
    };
    // A bzImage booted through the Linux 64-bit protocol, here or by the
    // stub: the one policy says what it needs, before anything is placed,
    // so `pvh boot` refuses what the stub would refuse, with the same
    // error.
    let needs = match (&image, config.kernel.protocol(), config.kernel.stub_image()) {
        (KernelImage::BzImage(bz), BootProtocol::Linux64, None)
        | (KernelImage::BzImage(bz), BootProtocol::Pvh, Some(_)) => {
            let needs = KernelNeeds::of(bz)?;
            needs.check_cmdline_len(config.cmdline.len() as u64)?;
            Some(needs)
        }
        _ => None,
    };
    let modules = module_list(config);
    let memmap = ram.memmap();
    let spec_for = |addrs: &[u64]| -> Vec<ModuleSpec<'_>> { module_specs(&modules, addrs) };

    let (mode, kernel, entry, delta) =
        match (config.kernel.protocol(), &image, config.kernel.stub_image()) {
            (BootProtocol::Pvh, KernelImage::BzImage(_), Some(stub)) => {
                let elf = ElfImage::parse(stub)?;
                let e = place_elf(&mut p, &elf, config.kernel.relocation())?;
                let k = KernelLoad::Elf {
                    source: ElfSource::Stub,
                    segments: e.segments,
                };
                (EntryMode::Protected32, k, e.entry, e.delta)
            }
            (BootProtocol::Pvh, KernelImage::PvhElf(elf), None) => {
                let e = place_elf(&mut p, elf, config.kernel.relocation())?;
                let k = KernelLoad::Elf {
                    source: ElfSource::Kernel,
                    segments: e.segments,
                };
                (EntryMode::Protected32, k, e.entry, e.delta)
            }
            (BootProtocol::PvhUnpack, KernelImage::BzImage(bz), None) => {
                // In an `Arc<Vec>`: an `Arc<[u8]>` would copy the vmlinux once more.
                let vmlinux = Arc::new(unpack_within(bz, ram.size())?);
                let elf = ElfImage::parse(&vmlinux)?;
                let e = place_elf(&mut p, &elf, config.kernel.relocation())?;
                let k = KernelLoad::Elf {
                    source: ElfSource::Unpacked(vmlinux.clone()),
                    segments: e.segments,
                };
                (EntryMode::Protected32, k, e.entry, e.delta)
            }
            (BootProtocol::Linux64, KernelImage::BzImage(_), None) => {
                // Placed below, once the start_info block (which holds the
                // command line the policy checks) has its address.
                let placeholder = LinuxPlacement {
                    load: 0,
                    runtime: 0,
                    window: 0,
                    copy: true,
                    zero_page: 0,
                    initrd: None,
                    cmdline: None,
                };
                (
                    EntryMode::Long64,
                    KernelLoad::BzImage {
                        placement: placeholder,
                    },
                    0,
                    0,
                )
            }
            (protocol, _, _) => return Err(wrong(protocol)),
        };
    let (mut kernel, mut entry) = (kernel, entry);

    // The start_info block's size does not depend on where modules go.
    let sized = spec_for(&vec![0; modules.len()]);
    let total = Sizes::of(&start_info_spec(config, rsdp, &sized, &memmap))?
        .packed_total()
        .ok_or(LoadError::AddressWraps {
            what: "start_info block",
            start: 0,
            len: u64::MAX,
        })?;
    let mut module_addrs = vec![0u64; modules.len()];
    let mut zero_page = None;
    let si = if mode == EntryMode::Long64 {
        // Linux64: the start_info block first (bottom-up from 4 KiB), then
        // the policy places kernel, initrd (module 0) and zero page.
        let si = p.alloc(Purpose::StartInfo, total, 8, FIRST_ALLOC, FOUR_GIB, false)?;
        let (placement, _) =
            pvh_entry::Placement::packed(si, &start_info_spec(config, rsdp, &sized, &memmap))?;
        let needs = needs.as_ref().ok_or(wrong(config.kernel.protocol()))?;
        let cmdline = (placement.strings, config.cmdline.len() as u64);
        let initrd = modules.first().filter(|m| !m.bytes.is_empty());
        let lp = place_linux(&mut p, needs, initrd, cmdline, &memmap)?;
        if let Some((addr, _)) = lp.initrd {
            module_addrs[0] = addr;
        }
        zero_page = Some(lp.zero_page);
        entry = lp.entry();
        kernel = KernelLoad::BzImage { placement: lp };
        place_modules(&mut p, &modules, &mut module_addrs, 1, None)?;
        si
    } else {
        // On the stub path the initrd (the module after the kernel) must
        // be where the stub's policy accepts it.
        let initrd_limit = needs.map(|n| (1, n));
        place_modules(&mut p, &modules, &mut module_addrs, 0, initrd_limit)?;
        p.alloc(Purpose::StartInfo, total, 8, FIRST_ALLOC, FOUR_GIB, false)?
    };
    let specs = spec_for(&module_addrs);
    let spec = start_info_spec(config, rsdp, &specs, &memmap);
    let (si_placement, _) = pvh_entry::Placement::packed(si, &spec)?;

    let (mut page_tables, mut stack_top, mut pt_len, mut identity_top) = (None, 0, 0, 0);
    if mode == EntryMode::Long64 {
        stack_top = p.alloc(
            Purpose::Stack,
            STACK_SIZE,
            PAGE_SIZE,
            FIRST_ALLOC,
            FOUR_GIB,
            false,
        )? + STACK_SIZE;
        // Identity-map everything placed (at least 4 GiB) with 2 MiB pages,
        // through the one builder (`pvh_entry::paging`). The tables' own
        // size is known before their address: the map's top does not
        // depend on them (they go below 4 GiB).
        let top = p
            .placements
            .iter()
            .filter(|pl| !matches!(pl.purpose, Purpose::Reserved(_)))
            .map(|pl| pl.start + pl.len)
            .max()
            .unwrap_or(0)
            .max(FOUR_GIB);
        identity_top = align_up(top, 1 << 30)
            .filter(|&t| t <= IDENTITY_MAP_MAX)
            .ok_or(LoadError::IdentityMapTooLarge { end: top })?;
        let tables = tables_for(identity_top, PageSize::Size2M)
            .map_err(|_| LoadError::IdentityMapTooLarge { end: top })?;
        pt_len = tables as u64 * PAGE_SIZE;
        page_tables = Some(p.alloc(
            Purpose::PageTables,
            pt_len,
            PAGE_SIZE,
            FIRST_ALLOC,
            FOUR_GIB,
            false,
        )?);
    }

    let usable = p.usable;
    let mut placements = p.placements;
    check_disjoint(&placements)?;
    for pl in placements
        .iter()
        .filter(|pl| !matches!(pl.purpose, Purpose::Reserved(_)))
    {
        // The firmware table regions are backed memory the map calls
        // RESERVED.
        let ok = match pl.purpose {
            Purpose::Acpi | Purpose::MpTable => ram.backs(&pl.range()),
            _ => usable
                .iter()
                .any(|u| crate::layout::contains(u, &pl.range())),
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
        config: config.clone(),
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
        mp_table,
        detail: Detail {
            kernel,
            modules: module_addrs,
            start_info: si_placement,
            ram: ram.clone(),
            stack_top,
            page_tables_len: pt_len,
            identity_top,
        },
    })
}

/// Places `modules[first..]` top-down (page-aligned, at or above 1 MiB,
/// below 4 GiB unless the module may go higher). With `initrd`, module
/// `index` is the initrd of a Linux boot: also below the kernel's initrd
/// limit (`KernelNeeds::initrd_limit`).
fn place_modules(
    p: &mut Planner,
    modules: &[Module<'_>],
    addrs: &mut [u64],
    first: usize,
    initrd: Option<(usize, KernelNeeds)>,
) -> Result<(), LoadError> {
    for (i, m) in modules.iter().enumerate().skip(first) {
        let len = m.bytes.len() as u64;
        if len == 0 {
            continue;
        }
        let mut max = if m.above_4g { u64::MAX } else { FOUR_GIB };
        if let Some((index, needs)) = &initrd {
            if *index == i {
                max = max.min(needs.initrd_limit(m.above_4g));
            }
        }
        // One block: the module, its headroom right after it, rounded up
        // to a page.
        let size = align_up(with_headroom(m)?, PAGE_SIZE).ok_or(LoadError::AddressWraps {
            what: "module",
            start: 0,
            len,
        })?;
        let at = p.alloc(Purpose::Module(i), size, PAGE_SIZE, ONE_MIB, max, true)?;
        // The placement covers the page-rounded size; the module is `len`,
        // its headroom the rest.
        if let Some(last) = p.placements.last_mut() {
            last.len = len;
        }
        place_headroom(p, i, at, m);
        addrs[i] = at;
    }
    Ok(())
}

/// A module's length plus its headroom.
fn with_headroom(m: &Module<'_>) -> Result<u64, LoadError> {
    let len = m.bytes.len() as u64;
    len.checked_add(m.headroom).ok_or(LoadError::AddressWraps {
        what: "module",
        start: 0,
        len,
    })
}

/// Records module `i`'s headroom (the block was allocated with it) right
/// after the module placed at `at`.
fn place_headroom(p: &mut Planner, i: usize, at: u64, m: &Module<'_>) {
    if m.headroom > 0 {
        p.placements.push(Placement {
            purpose: Purpose::Headroom(i),
            start: at + m.bytes.len() as u64,
            len: m.headroom,
        });
    }
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
