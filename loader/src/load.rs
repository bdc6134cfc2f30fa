//! Carrying out a plan: every byte goes through `pvh_entry`'s memory
//! traits over vm-memory, behind a guard that refuses anything outside the
//! planned guest RAM.

use crate::cpu::{CpuState, EntryMode};
use crate::error::LoadError;
use crate::gdt;
use crate::layout::{GDT_ADDR, GuestRam, IDT_ADDR};
use crate::plan::{BootPlan, Placement, Purpose};
use crate::planner::{ElfSource, KernelLoad, module_list, module_specs, start_info_spec};
use pvh_bootparams::{BootParams, BzImage, E820Entry, E820Type, ZERO_PAGE_SIZE};
use pvh_entry::linux::finish_zero_page;
use pvh_entry::memory::{OutOfRange, PhysRead, PhysWrite};
use pvh_entry::paging::{BufferTables, ENTRIES, PageSize, Table, identity_map};
use pvh_entry::zeropage::{e820_scratch_len, translate, write_e820_ext};
use pvh_entry::{InitrdChoice, StartInfoView, TranslateOptions, VmMemory, write_start_info};
use zerocopy::IntoBytes;

/// A guest ready to run: its boot vCPU state and what was written where.
#[derive(Debug, Clone)]
pub struct LoadedGuest {
    /// The boot vCPU's initial state.
    pub cpu: CpuState,
    /// Where the start_info is.
    pub start_info: u64,
    /// The zero page (Linux64).
    pub zero_page: Option<u64>,
    /// What was written where: the plan's placements.
    pub placements: Vec<Placement>,
}

impl LoadedGuest {
    /// The placement for `purpose`, if any.
    pub fn find(&self, purpose: Purpose) -> Option<&Placement> {
        self.placements.iter().find(|p| p.purpose == purpose)
    }
}

/// Guest memory restricted to the RAM the plan was made for: a write (or
/// read) outside it fails, even if the backing memory is larger.
struct Guarded<'m, M> {
    mem: VmMemory<'m, M>,
    ram: &'m GuestRam,
    /// The planned RAM is known to read as zero (see [`load_into_zeroed`]):
    /// [`Guarded::zero`] only checks its range.
    zeroed: bool,
}

/// The source of [`Guarded::zero`]'s writes: one page of zeros in the
/// binary's read-only data, so that zeroing needs no buffer of its own.
static ZERO_PAGE: [u8; 4096] = [0; 4096];

impl<M: vm_memory::GuestMemory> Guarded<'_, M> {
    fn check(&self, addr: u64, len: usize) -> Result<(), OutOfRange> {
        let err = OutOfRange {
            addr,
            len: len as u64,
        };
        let end = addr.checked_add(len as u64).ok_or(err)?;
        if len > 0 && !self.ram.backs(&(addr..end)) {
            return Err(err);
        }
        Ok(())
    }

    /// Makes `len` bytes at `addr` zero: writes them, unless the memory is
    /// known to be zero already (the range is checked either way).
    fn zero(&mut self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        let chunk = ZERO_PAGE.len() as u64;
        self.check(addr, 0)?;
        let end = addr.checked_add(len).ok_or(OutOfRange { addr, len })?;
        self.check(
            addr,
            usize::try_from(len).map_err(|_| OutOfRange { addr, len })?,
        )?;
        if self.zeroed {
            return Ok(());
        }
        let mut at = addr;
        while at < end {
            let n = (end - at).min(chunk);
            self.write(at, &ZERO_PAGE[..n as usize])?;
            at += n;
        }
        Ok(())
    }
}

impl<M: vm_memory::GuestMemory> PhysRead for Guarded<'_, M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        self.check(addr, buf.len())?;
        self.mem.read(addr, buf)
    }
}

impl<M: vm_memory::GuestMemory> PhysWrite for Guarded<'_, M> {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        self.check(addr, data.len())?;
        self.mem.write(addr, data)
    }
}

/// The identity map for the Linux 64-bit entry: `0..top` with 2 MiB pages
/// in `len` bytes of tables at `base`, built by the one builder
/// (`pvh_entry::paging`, which the guest runtime uses too): PML4, then the
/// PDPT, then one page directory per GiB.
pub(crate) fn identity_page_tables(base: u64, len: u64, top: u64) -> Result<Vec<u8>, LoadError> {
    let too_large = LoadError::IdentityMapTooLarge { end: top };
    let mut tables: Vec<Table> = vec![[0; ENTRIES]; (len / size_of::<Table>() as u64) as usize];
    let mut t = BufferTables::new(base, &mut tables);
    identity_map(&mut t, base, 0, top, PageSize::Size2M).map_err(|_| too_large)?;
    Ok(tables.as_bytes().to_vec())
}

/// Writes everything `plan` describes (from the inputs it was made from)
/// into `mem` and returns the boot vCPU's state. Only the RAM the plan was
/// made for is written, even if `mem` is larger.
pub fn load<M: vm_memory::GuestMemory>(
    mem: &M,
    plan: &BootPlan<'_>,
) -> Result<LoadedGuest, LoadError> {
    load_with(mem, plan, false)
}

/// [`load`] into guest RAM that is known to read as zero, such as a fresh
/// anonymous mapping (what a VMM allocates for a new guest): the loader
/// then writes no zeros (a segment's BSS, the ACPI region), which would
/// only fault in and clear pages the kernel has already cleared. The
/// result is the same as [`load`]'s on such memory; on memory that holds
/// anything else, the BSS and ACPI region keep it.
pub fn load_into_zeroed<M: vm_memory::GuestMemory>(
    mem: &M,
    plan: &BootPlan<'_>,
) -> Result<LoadedGuest, LoadError> {
    load_with(mem, plan, true)
}

fn load_with<M: vm_memory::GuestMemory>(
    mem: &M,
    plan: &BootPlan<'_>,
    zeroed: bool,
) -> Result<LoadedGuest, LoadError> {
    let d = &plan.detail;
    let config = &plan.config;
    let modules = module_list(config);
    let mut w = Guarded {
        mem: VmMemory(mem),
        ram: &d.ram,
        zeroed,
    };

    let mut linux = None;
    match &d.kernel {
        KernelLoad::Elf { source, segments } => {
            let bytes: &[u8] = match source {
                ElfSource::Kernel => config.kernel.image(),
                ElfSource::Stub => config.kernel.stub_image().unwrap_or(&[]),
                ElfSource::Unpacked(v) => v,
            };
            for (s, gpa) in segments {
                let file = usize::try_from(s.offset)
                    .ok()
                    .zip(usize::try_from(s.filesz).ok())
                    .and_then(|(o, n)| bytes.get(o..o.checked_add(n)?))
                    .ok_or(LoadError::SegmentOutsideFile {
                        index: s.index,
                        offset: s.offset,
                        filesz: s.filesz,
                        file_len: bytes.len() as u64,
                    })?;
                w.write(*gpa, file)?;
                // BSS: the memory tail the file does not cover.
                w.zero(*gpa + s.filesz, s.memsz - s.filesz)?;
            }
        }
        KernelLoad::BzImage { placement } => {
            let bz = BzImage::parse(config.kernel.image())?;
            w.write(placement.load, bz.kernel())?;
            linux = Some((*placement, bz));
        }
    }
    for (m, &addr) in modules.iter().zip(&d.modules) {
        w.write(addr, m.bytes)?;
    }
    // The caller writes the tables; start from a clean region.
    for region in plan.acpi.iter().chain(&plan.mp_table) {
        w.zero(region.start, region.end - region.start)?;
    }
    let table: &[u64] = match plan.mode {
        EntryMode::Protected32 => &gdt::PVH_GDT,
        EntryMode::Long64 => &gdt::LONG64_GDT,
    };
    w.write(GDT_ADDR, &gdt::to_bytes(table))?;
    w.write(IDT_ADDR, &[0; gdt::IDT_SIZE as usize])?;

    let specs = module_specs(&modules, &d.modules);
    let spec = start_info_spec(config, plan.rsdp, &specs, &plan.memmap);
    write_start_info(&mut w, &spec, &d.start_info)?;

    let cpu = match (plan.mode, linux, plan.page_tables) {
        (EntryMode::Long64, Some((placement, bz)), Some(pt)) => {
            let view = StartInfoView::read(&w, plan.start_info)?;
            // The one translation, then the one finishing step: initrd and
            // command line are the placement's.
            let options = TranslateOptions::default()
                .subarch(config.kernel.subarch())
                .initrd(InitrdChoice::None)
                .setup_header(Some(bz.header()));
            let mut scratch =
                vec![E820Entry::new(0, 0, E820Type(0)); e820_scratch_len(plan.memmap.len())];
            let mut bp = BootParams::zeroed();
            let t = translate(&view, &options, &mut scratch, &mut bp)?;
            finish_zero_page(&mut bp, &placement);
            let zp = placement.zero_page;
            let ext = t.e820_ext(&scratch);
            if !ext.is_empty() {
                write_e820_ext(&mut w, zp + ZERO_PAGE_SIZE as u64, ext, &mut bp)?;
            }
            w.write(zp, bp.as_page())?;
            w.write(
                pt,
                &identity_page_tables(pt, d.page_tables_len, d.identity_top)?,
            )?;
            CpuState::long64(plan.entry, zp, pt, d.stack_top, GDT_ADDR, IDT_ADDR)
        }
        _ => CpuState::pvh(plan.entry, plan.start_info, GDT_ADDR, IDT_ADDR),
    };
    Ok(LoadedGuest {
        cpu,
        start_info: plan.start_info,
        zero_page: plan.zero_page,
        placements: plan.placements.clone(),
    })
}
