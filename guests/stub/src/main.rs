//! `pvh-stub`: the zero-page stub. A PVH guest that boots an unmodified
//! Linux bzImage through the Linux 64-bit boot protocol, so any PVH
//! hypervisor (QEMU, Xen, Firecracker, Cloud Hypervisor, `pvh boot`) can
//! boot a distribution kernel.
//!
//! Where the kernel comes from, in order:
//! 1. the payload `pvh wrap` embedded at
//!    `pvh_entry::payload::PAYLOAD_ADDR` (its initrd is
//!    module 0 if the hypervisor passed one, else the embedded one);
//! 2. the first start_info module that is a bzImage (the initrd is then
//!    the module after it).
//!
//! The command line is the start_info's when non-empty, else the embedded
//! default. The zero page comes from the one translation
//! [`pvh_entry::zeropage::translate`], placement from
//! [`pvh_entry::linux::plan_boot`]; this file only gathers inputs, copies
//! bytes and jumps. Every failure prints one `stub: error: ...` line and
//! exits with [`ExitCode::Failure`] (QEMU status 3).
//!
//! It prints `stub: started` first; before jumping, a summary line and
//! `stub.tsc=N`: TSC cycles from the start of
//! `main` to just before the jump.
#![no_std]
#![no_main]

use core::fmt;
use pvh_entry::bootparams::{BootParams, BzImage, E820Entry, E820Type, ZERO_PAGE_SIZE};
use pvh_entry::linux::{
    BootRequest, InitrdSource, KernelNeeds, LinuxBootError, RangeList, plan_boot, start_info_ranges,
};
use pvh_entry::memory::write_obj;
use pvh_entry::payload::{PAYLOAD_ADDR, Payload, PayloadError, read_payload};
use pvh_entry::rt::exit::{ExitCode, exit};
use pvh_entry::rt::paging::{MapError, extend_identity_map, mapped_top};
use pvh_entry::rt::{BootInfo, identity_memory};
use pvh_entry::zeropage::{e820_ext_size, e820_scratch_len, write_e820_ext};
use pvh_entry::{
    InitrdChoice, MemmapEntry, MemmapType, OutOfRange, ReadError, StartInfoView, TranslateError,
    TranslateOptions, rt_println as out, translate,
};
use x86_64::PrivilegeLevel::Ring0;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};

pvh_entry::pvh_main!(main);

/// Most memory-map entries the stub handles.
const MAX_MAP: usize = 256;
/// Most ranges the stub tracks as in use.
const MAX_AVOID: usize = 256;

unsafe extern "C" {
    static __pvh_image_start: u8;
    static __pvh_image_end: u8;
}

/// Why the stub cannot boot the kernel: printed as one line.
#[derive(Debug, thiserror::Error)]
enum StubError {
    #[error("start_info: {0}")]
    StartInfo(#[from] ReadError),
    #[error("embedded payload: {0}")]
    Payload(#[from] PayloadError),
    #[error("no kernel: no embedded payload and no start_info modules")]
    NoKernel,
    #[error(
        "no kernel: no embedded payload and module 0 ({size:#x} bytes at {addr:#x}) is not a bzImage: {reason}"
    )]
    ModuleNotKernel {
        addr: u64,
        size: u64,
        reason: pvh_entry::bootparams::ImageError,
    },
    #[error("kernel: {0}")]
    Kernel(#[from] LinuxBootError),
    #[error("zero page: {0}")]
    Translate(#[from] TranslateError),
    #[error("no memory map: start_info version {0} has none and this is not Xen")]
    NoMemoryMap(u32),
    #[error("Xen memory map: {0}")]
    XenMap(pvh_entry::rt::xen::XenError),
    #[error("{count} memory-map entries, more than the {max} the stub handles")]
    MapTooLarge { count: u32, max: usize },
    #[error("identity map: {0}")]
    Map(#[from] MapError),
    #[error("memory: {0}")]
    Memory(#[from] OutOfRange),
    #[error("embedded initrd ends at {end:#x}, above the kernel's initrd_addr_max {max:#x}")]
    InitrdTooHigh { end: u64, max: u64 },
}

fn main(boot: BootInfo) -> ! {
    // First sign of life, before the work is timed: a copy of the kernel
    // can take long on a slow hypervisor, and this shows the stub is up.
    out!("stub: started");
    let t0 = rdtsc();
    match prepare(&boot) {
        Ok(ready) => {
            let t1 = rdtsc();
            out!("{}", ready);
            out!("stub.tsc={}", t1.wrapping_sub(t0));
            // SAFETY: `prepare` copied the kernel's code to `ready.kernel`,
            // wrote the zero page at `ready.zero_page`, and made sure the
            // identity map covers both, the command line and the initrd.
            unsafe { jump(ready.kernel + 0x200, ready.zero_page) }
        }
        Err(e) => {
            out!("stub: error: {e}");
            exit(ExitCode::Failure)
        }
    }
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear (the runtime
    // leaves CR4 as it set it, with TSD off).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Where things went, for the one summary line.
struct Ready {
    kernel: u64,
    copied: bool,
    zero_page: u64,
    source: &'static str,
    initrd: Option<(u64, u64)>,
    cmdline: &'static str,
    memmap: &'static str,
    e820_entries: usize,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stub: kernel from {} at {:#x} ({}), zero page {:#x}, {} e820 entries from {}, cmdline from {}",
            self.source,
            self.kernel,
            if self.copied { "copied" } else { "in place" },
            self.zero_page,
            self.e820_entries,
            self.memmap,
            self.cmdline
        )?;
        match self.initrd {
            Some((a, n)) => write!(f, ", initrd {a:#x}+{n:#x}"),
            None => write!(f, ", no initrd"),
        }
    }
}

/// `len` bytes at physical `addr` as a slice, after making sure the
/// identity map covers them.
fn phys_slice(addr: u64, len: u64) -> Result<&'static [u8], StubError> {
    let err = OutOfRange { addr, len };
    let end = addr.checked_add(len).ok_or(err)?;
    if addr < 0x1000 || usize::try_from(len).is_err() {
        return Err(err.into());
    }
    if end > mapped_top() {
        extend_identity_map(end)?;
    }
    // SAFETY: `addr..end` is identity-mapped (checked above), above page 0,
    // and the stub only reads these bytes (modules, the payload) until the
    // kernel copy, which never overlaps them (`plan_boot` avoids them).
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
}

fn prepare(boot: &BootInfo) -> Result<Ready, StubError> {
    // SAFETY: the stub reads through this view, and writes only the zero
    // page and the kernel, at addresses `plan_boot` chose clear of the
    // stub's own image (where its Rust data lives).
    let mut mem = unsafe { identity_memory() };
    let view = StartInfoView::read(&mem, boot.start_info)?;
    let nr_modules = view.module_count();

    // The kernel, initrd and command line sources.
    let payload: Option<Payload> = read_payload(&mem, PAYLOAD_ADDR)?.map(|(_, p)| p);
    let (kernel_range, source, initrd_source) = match &payload {
        Some(p) => {
            let embedded = p.initrd.as_ref().map(|r| (r.start, r.end - r.start));
            let initrd = InitrdSource::for_payload(embedded, nr_modules);
            (p.kernel.clone(), "payload", initrd)
        }
        None => {
            let mut found = None;
            let mut first_error = None;
            for m in view.modules() {
                let bytes = phys_slice(m.entry.paddr, m.entry.size)?;
                match BzImage::parse(bytes) {
                    Ok(_) => {
                        found = Some(m);
                        break;
                    }
                    Err(reason) if first_error.is_none() => {
                        first_error = Some(StubError::ModuleNotKernel {
                            addr: m.entry.paddr,
                            size: m.entry.size,
                            reason,
                        })
                    }
                    Err(_) => {}
                }
            }
            let m = found.ok_or(first_error.unwrap_or(StubError::NoKernel))?;
            let initrd = InitrdSource::after_module(m.index, nr_modules);
            let start = m.entry.paddr;
            (start..start + m.entry.size, "module", initrd)
        }
    };
    let kernel_bytes = phys_slice(kernel_range.start, kernel_range.end - kernel_range.start)?;
    let image = BzImage::parse(kernel_bytes).map_err(LinuxBootError::from)?;
    let needs = KernelNeeds::of(&image)?;
    let code_start = kernel_range.start + image.setup_size() as u64;

    // The memory map: the start_info's, else Xen's.
    let mut xen_map = [MemmapEntry::new(0, 0, MemmapType::RAM); MAX_MAP];
    let supplied = if view.memmap_len() > 0 {
        if view.memmap_len() as usize > MAX_MAP {
            return Err(StubError::MapTooLarge {
                count: view.memmap_len(),
                max: MAX_MAP,
            });
        }
        None
    } else {
        let xen = boot.xen.ok_or(StubError::NoMemoryMap(view.version()))?;
        let mut e820 = [E820Entry::new(0, 0, E820Type::RAM); MAX_MAP];
        let n = xen.memory_map(&mut e820).map_err(StubError::XenMap)?;
        for (slot, e) in xen_map.iter_mut().zip(&e820[..n]) {
            *slot = MemmapEntry::new(e.addr, e.size, MemmapType({ e.type_ }.0));
        }
        Some(&xen_map[..n])
    };

    // The zero page, from the one translation.
    let options = TranslateOptions {
        setup_header: Some(image.header()),
        initrd: match initrd_source {
            InitrdSource::Module(i) => InitrdChoice::Module(i),
            InitrdSource::None | InitrdSource::Embedded(..) => InitrdChoice::None,
        },
        memmap: supplied,
        ..TranslateOptions::default()
    };
    let mut scratch = [E820Entry::new(0, 0, E820Type::RAM); e820_scratch_len(MAX_MAP)];
    let mut bp = BootParams::zeroed();
    let t = translate(&view, &options, &mut scratch, &mut bp)?;
    let e820 = &scratch[..t.e820_total];
    let ext = t.e820_ext(&scratch);

    let mut cmdline_source = "start_info";
    let start_cmdline = view.cmdline().filter(|&(_, len)| len > 0);
    if start_cmdline.is_none() {
        match payload.as_ref().and_then(|p| p.cmdline.clone()) {
            Some(r) => {
                bp.set_cmd_line_ptr(r.start);
                cmdline_source = "payload";
            }
            None => cmdline_source = "nowhere (empty)",
        }
    }
    let mut initrd = t.initrd;
    if let InitrdSource::Embedded(addr, size) = initrd_source {
        let max = u64::from(image.header().initrd_addr_max);
        let end = addr.saturating_add(size);
        if !needs.above_4g && max != 0 && size > 0 && end - 1 > max {
            return Err(StubError::InitrdTooHigh { end, max });
        }
        bp.set_ramdisk(addr, size);
        initrd = Some((addr, size));
    }

    // Everything in use.
    let mut avoid = RangeList::<MAX_AVOID>::new();
    let (image_start, image_end) = (
        &raw const __pvh_image_start as u64,
        &raw const __pvh_image_end as u64,
    );
    avoid.push(image_start, image_end - image_start)?;
    start_info_ranges(&view, Some(kernel_range.start), &mut avoid)?;
    // The kernel's setup sectors, and the payload around the code.
    avoid.push(kernel_range.start, code_start - kernel_range.start)?;
    if let Some(p) = &payload {
        avoid.push(p.whole.start, kernel_range.start - p.whole.start)?;
        avoid.push(kernel_range.end, p.whole.end - kernel_range.end)?;
    }

    let zero_page_size = ZERO_PAGE_SIZE as u64
        + if ext.is_empty() {
            0
        } else {
            e820_ext_size(ext.len())
        };
    let request = BootRequest {
        needs,
        code: (code_start, kernel_range.end),
        zero_page_size,
    };
    let mut plan_scratch = [(0u64, 0u64); MAX_AVOID + 2];
    let plan = plan_boot(&request, e820, avoid.as_slice(), &mut plan_scratch)?;

    // Map what the kernel will touch before its own page tables.
    let mut top = plan.kernel + needs.init_size;
    top = top.max(plan.zero_page + zero_page_size);
    if let Some((a, n)) = initrd {
        top = top.max(a + n);
    }
    top = top.max(bp.cmd_line_ptr() + u64::from(image.header().cmdline_size) + 1);
    if top > mapped_top() {
        extend_identity_map(top)?;
    }

    if plan.copy {
        // SAFETY: source and destination are RAM under the identity map
        // (mapped above); `plan_boot` put the destination clear of the
        // stub, the payload, the modules and the start_info; `copy` allows
        // the two ranges to overlap.
        unsafe {
            core::ptr::copy(
                code_start as *const u8,
                plan.kernel as *mut u8,
                (kernel_range.end - code_start) as usize,
            )
        };
    }
    if !ext.is_empty() {
        write_e820_ext(
            &mut mem,
            plan.zero_page + ZERO_PAGE_SIZE as u64,
            ext,
            &mut bp,
        )?;
    }
    // As a conforming loader does (and pvh's host loader): code32_start
    // names where the protected-mode code was loaded. The 64-bit entry does
    // not read it, but tools inspecting the zero page do.
    bp.hdr.code32_start = u32::try_from(plan.kernel).unwrap_or(0);
    write_obj(&mut mem, plan.zero_page, &bp)?;
    Ok(Ready {
        kernel: plan.kernel,
        copied: plan.copy,
        zero_page: plan.zero_page,
        source,
        initrd,
        cmdline: cmdline_source,
        memmap: if supplied.is_some() {
            "XENMEM_memory_map"
        } else {
            "start_info"
        },
        e820_entries: t.e820_total,
    })
}

/// The GDT Linux's 64-bit entry expects: flat 64-bit code at 0x10, data at
/// 0x18 (0x08 is an unused data descriptor).
static GDT: GlobalDescriptorTable = {
    let mut gdt = GlobalDescriptorTable::new();
    gdt.append(Descriptor::kernel_data_segment());
    gdt.append(Descriptor::kernel_code_segment());
    gdt.append(Descriptor::kernel_data_segment());
    gdt
};

/// Enters the kernel at `entry` per the 64-bit boot protocol.
///
/// # Safety
/// `entry` must be a loaded kernel's 64-bit entry and `zero_page` its zero
/// page, both identity-mapped.
unsafe fn jump(entry: u64, zero_page: u64) -> ! {
    GDT.load();
    // SAFETY: the selectors index the GDT just loaded: 64-bit code at
    // index 2 (0x10), data at index 3 (0x18).
    unsafe {
        CS::set_reg(SegmentSelector::new(2, Ring0));
        DS::set_reg(SegmentSelector::new(3, Ring0));
        ES::set_reg(SegmentSelector::new(3, Ring0));
        SS::set_reg(SegmentSelector::new(3, Ring0));
    }
    // SAFETY: per this function's contract; interrupts off, direction flag
    // clear, RSI = zero page, as boot.rst asks.
    unsafe {
        core::arch::asm!(
            "cli",
            "cld",
            "jmp {entry}",
            entry = in(reg) entry,
            in("rsi") zero_page,
            options(noreturn)
        )
    }
}
