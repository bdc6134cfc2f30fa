//! Carrying out a plan: every byte goes through `pvh_entry`'s memory
//! traits over vm-memory, behind a guard that refuses anything outside the
//! planned guest RAM.

use crate::cpu::{CpuState, EntryMode};
use crate::error::LoadError;
use crate::gdt;
use crate::layout::{GDT_ADDR, GuestRam, IDT_ADDR, PAGE_SIZE};
use crate::plan::{BootConfig, BootPlan};
use crate::planner::{ElfSource, KernelLoad, module_list, module_specs, start_info_spec};
use pvh_bootparams::{BootParams, BzImage, E820Entry, E820Type, LoadFlags};
use pvh_entry::memory::{OutOfRange, PhysRead, PhysWrite};
use pvh_entry::zeropage::{e820_scratch_len, translate};
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
    /// The plan that was carried out.
    pub plan: BootPlan,
}

/// Guest memory restricted to the RAM the plan was made for: a write (or
/// read) outside it fails, even if the backing memory is larger.
struct Guarded<'m, M> {
    mem: VmMemory<'m, M>,
    ram: &'m GuestRam,
}

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

    /// Writes `len` zero bytes at `addr`.
    fn zero(&mut self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        const CHUNK: u64 = 1 << 16;
        let zeros = [0u8; CHUNK as usize];
        self.check(addr, 0)?;
        let end = addr.checked_add(len).ok_or(OutOfRange { addr, len })?;
        self.check(
            addr,
            usize::try_from(len).map_err(|_| OutOfRange { addr, len })?,
        )?;
        let mut at = addr;
        while at < end {
            let n = (end - at).min(CHUNK);
            self.write(at, &zeros[..n as usize])?;
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

fn same(what: &'static str, planned: u64, given: usize) -> Result<(), LoadError> {
    if planned != given as u64 {
        return Err(LoadError::PlanMismatch {
            what,
            planned,
            given: given as u64,
        });
    }
    Ok(())
}

/// The identity map for the Linux 64-bit entry at `base`: PML4, one PDPT,
/// then one page directory per GiB, 2 MiB pages, `len` bytes in all.
pub(crate) fn identity_page_tables(base: u64, len: u64) -> Vec<u8> {
    const PRESENT_RW: u64 = 0x3;
    const PAGE_2M: u64 = 0x80;
    let pds = len / PAGE_SIZE - 2;
    let mut words = vec![0u64; (len / 8) as usize];
    words[0] = (base + PAGE_SIZE) | PRESENT_RW;
    for gib in 0..pds {
        let pd = base + (2 + gib) * PAGE_SIZE;
        words[512 + gib as usize] = pd | PRESENT_RW;
        for j in 0..512 {
            let phys = (gib * 512 + j) << 21;
            words[((2 + gib) * 512 + j) as usize] = phys | PRESENT_RW | PAGE_2M;
        }
    }
    words.as_bytes().to_vec()
}

/// Writes everything `plan` describes into `mem` and returns the boot
/// vCPU's state. `config` must be the one the plan was made from (lengths
/// are checked again). Only the RAM the plan was made for is written, even
/// if `mem` is larger.
pub fn load<M: vm_memory::GuestMemory>(
    mem: &M,
    plan: &BootPlan,
    config: &BootConfig<'_>,
) -> Result<LoadedGuest, LoadError> {
    let d = &plan.detail;
    let modules = module_list(config);
    same("kernel length", d.kernel_len, config.kernel.len())?;
    same(
        "stub length",
        d.stub_len,
        config.stub.map_or(0, <[u8]>::len),
    )?;
    same("command-line length", d.cmdline_len, config.cmdline.len())?;
    same("module count", d.module_lens.len() as u64, modules.len())?;
    for (&planned, m) in d.module_lens.iter().zip(&modules) {
        same("module length", planned, m.bytes.len())?;
    }
    let mut w = Guarded {
        mem: VmMemory(mem),
        ram: &d.ram,
    };

    let mut bz_addr = None;
    match &d.kernel {
        KernelLoad::Elf { source, segments } => {
            let bytes: &[u8] = match source {
                ElfSource::Kernel => config.kernel,
                ElfSource::Stub => config.stub.unwrap_or(&[]),
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
        KernelLoad::BzImage { addr } => {
            let bz = BzImage::parse(config.kernel)?;
            w.write(*addr, bz.kernel())?;
            bz_addr = Some((*addr, bz));
        }
    }
    for (m, &addr) in modules.iter().zip(&d.modules) {
        w.write(addr, m.bytes)?;
    }
    // The caller writes the tables; start from a clean region.
    if let Some(acpi) = &plan.acpi {
        w.zero(acpi.start, acpi.end - acpi.start)?;
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

    let cpu = match (plan.mode, bz_addr, plan.zero_page, plan.page_tables) {
        (EntryMode::Long64, Some((addr, bz)), Some(zp), Some(pt)) => {
            let view = StartInfoView::read(&w, plan.start_info)?;
            let options = TranslateOptions {
                subarch: config.subarch,
                initrd: InitrdChoice::FirstModule,
                setup_header: Some(bz.header()),
                memmap: None,
            };
            let mut scratch =
                vec![E820Entry::new(0, 0, E820Type(0)); e820_scratch_len(plan.memmap.len())];
            let mut bp = BootParams::zeroed();
            translate(&view, &options, &mut scratch, &mut bp)?;
            bp.hdr.loadflags |= LoadFlags::LOADED_HIGH.bits();
            bp.hdr.code32_start = u32::try_from(addr).unwrap_or(0);
            w.write(zp, bp.as_page())?;
            w.write(pt, &identity_page_tables(pt, d.page_tables_len))?;
            CpuState::long64(plan.entry, zp, pt, d.stack_top, GDT_ADDR, IDT_ADDR)
        }
        _ => CpuState::pvh(plan.entry, plan.start_info, GDT_ADDR, IDT_ADDR),
    };
    Ok(LoadedGuest {
        cpu,
        start_info: plan.start_info,
        zero_page: plan.zero_page,
        plan: plan.clone(),
    })
}
