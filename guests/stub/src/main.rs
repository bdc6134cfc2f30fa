//! `pvh-stub`: the zero-page stub. A PVH guest that boots an unmodified
//! Linux bzImage through the Linux 64-bit boot protocol, so any PVH
//! hypervisor (QEMU, Xen, Firecracker, Cloud Hypervisor, `pvh boot`) can
//! boot a distribution kernel.
//!
//! Every decision (which kernel, initrd, command line, memory map, RSDP and
//! subarch; where the kernel and zero page go; the zero page itself) is
//! [`pvh_entry::linux::stub::plan`], the same function the host tests run
//! and built on the same policy as pvh's host loader. This file only
//! supplies memory, asks Xen for a memory map when the start_info has none,
//! copies bytes and jumps. Every failure prints one `stub: error: ...`
//! line and exits with [`ExitCode::Failure`] (QEMU status 3).
//!
//! It prints `stub: started` first; before jumping, a summary line and
//! `stub.tsc=N`: TSC cycles from the start of `main` to just before the
//! jump.
#![no_std]
#![no_main]

use core::fmt;
use pvh_entry::bootparams::{E820Entry, E820Type};
use pvh_entry::linux::stub::{
    CmdlineSource, Inputs, KernelSource, MAX_MAP, MapSource, Scratch, StubError, StubPlan, plan,
};
use pvh_entry::machine::gdt::long64;
use pvh_entry::memory::{PhysBytes, PhysRead, PhysWrite};
use pvh_entry::rt::exit::{ExitCode, exit};
use pvh_entry::rt::paging::{MapError, extend_identity_map, mapped_top};
use pvh_entry::rt::xen::XenError;
use pvh_entry::rt::{BootCell, BootInfo};
use pvh_entry::{
    MemmapEntry, MemmapType, OutOfRange, StartInfoView, SubarchPolicy, rt_println as out,
};
use x86_64::PrivilegeLevel::Ring0;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::structures::gdt::SegmentSelector;

pvh_entry::pvh_main!(main);

unsafe extern "C" {
    static __pvh_image_start: u8;
    static __pvh_image_end: u8;
}

/// Why the stub stops: the shared decision's error, or the guest-side
/// steps around it.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Plan(#[from] StubError),
    #[error("Xen memory map: {0}")]
    XenMap(XenError),
    #[error("identity map: {0}")]
    Map(#[from] MapError),
    #[error("memory: {0}")]
    Memory(#[from] OutOfRange),
}

/// The stub's scratch space: in `.bss`, not on the boot stack.
static SCRATCH: BootCell<Scratch> = BootCell::new(Scratch::new());

fn main(boot: BootInfo) -> ! {
    // First sign of life, before the work is timed: a copy of the kernel
    // can take long on a slow hypervisor, and this shows the stub is up.
    out!("stub: started");
    let t0 = rdtsc();
    // SAFETY: `main` runs once, on the only CPU, and nothing else touches
    // the scratch space.
    let scratch = unsafe { &mut *SCRATCH.get() };
    match prepare(&boot, scratch) {
        Ok(ready) => {
            let t1 = rdtsc();
            out!("{}", Summary(&ready));
            out!("stub.tsc={}", t1.wrapping_sub(t0));
            // SAFETY: `prepare` put the kernel's code at its load address,
            // wrote the zero page, and made sure the identity map covers
            // both, the command line and the initrd.
            unsafe { jump(ready.placement.entry(), ready.placement.zero_page) }
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

/// Physical memory through the runtime's identity map, grown on demand to
/// cover what is read: modules and payloads may lie above 4 GiB.
struct Ram;

impl Ram {
    fn check(addr: u64, len: u64) -> Result<(), OutOfRange> {
        let err = OutOfRange { addr, len };
        let end = addr.checked_add(len).ok_or(err)?;
        // Address 0 is Rust's null pointer; the rest of page 0 is memory.
        if (len > 0 && addr == 0) || usize::try_from(len).is_err() {
            return Err(err);
        }
        if end > mapped_top() {
            extend_identity_map(end).map_err(|_| err)?;
        }
        Ok(())
    }
}

impl PhysRead for Ram {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        buf.copy_from_slice(self.bytes(addr, buf.len() as u64)?);
        Ok(())
    }
}

impl PhysBytes for Ram {
    fn bytes(&self, addr: u64, len: u64) -> Result<&[u8], OutOfRange> {
        Self::check(addr, len)?;
        // SAFETY: `check` made `addr..addr+len` identity-mapped and
        // non-null; the stub only reads these bytes (the start_info,
        // modules, the payload) before writing the kernel and zero page,
        // which the plan puts clear of all of them.
        Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
    }
}

impl PhysWrite for Ram {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        Self::check(addr, data.len() as u64)?;
        // SAFETY: mapped as above; the plan keeps the destinations (zero
        // page, e820 node) clear of the stub image, where Rust data lives,
        // and of every slice read above.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }
}

fn prepare<'s>(boot: &BootInfo, scratch: &'s mut Scratch) -> Result<StubPlan<'s>, Failure> {
    let mut ram = Ram;
    // The memory map: the start_info's, else Xen's.
    let view = StartInfoView::read(&ram, boot.start_info).map_err(StubError::from)?;
    let mut xen_map = [MemmapEntry::new(0, 0, MemmapType::RAM); MAX_MAP];
    let supplied = match boot.xen {
        Some(xen) if view.memmap_len() == 0 => {
            let mut e820 = [E820Entry::new(0, 0, E820Type::RAM); MAX_MAP];
            let n = xen.memory_map(&mut e820).map_err(Failure::XenMap)?;
            for (slot, e) in xen_map.iter_mut().zip(&e820[..n]) {
                *slot = MemmapEntry::new(e.addr, e.size, MemmapType({ e.type_ }.0));
            }
            Some(&xen_map[..n])
        }
        _ => None,
    };
    let inputs = Inputs::new(
        boot.start_info,
        (
            &raw const __pvh_image_start as u64,
            &raw const __pvh_image_end as u64,
        ),
    )
    .supplied_map(supplied);
    let mut plan = plan(&ram, &inputs, scratch)?;

    // Map what the kernel will touch before its own page tables.
    let top = plan.map_top();
    if top > mapped_top() {
        extend_identity_map(top)?;
    }
    let p = &plan.placement;
    if p.copy {
        let len = plan.needs.code_size;
        // SAFETY: source and destination are RAM under the identity map
        // (mapped above); the plan put the destination clear of the stub,
        // the payload, the modules and the start_info; `copy` allows the
        // two ranges to overlap.
        unsafe { core::ptr::copy(plan.code.0 as *const u8, p.load as *mut u8, len as usize) };
    }
    plan.write_zero_page(&mut ram)?;
    Ok(plan)
}

/// The one summary line.
struct Summary<'a, 's>(&'a StubPlan<'s>);

impl fmt::Display for Summary<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        let p = &plan.placement;
        match plan.source {
            KernelSource::Payload => f.write_str("stub: kernel from payload")?,
            KernelSource::Module(i) => write!(f, "stub: kernel from module {i}")?,
        }
        write!(
            f,
            " at {:#x} ({}, runs at {:#x}), zero page {:#x}, {} e820 entries from {}, cmdline from {}",
            p.load,
            if p.copy { "copied" } else { "in place" },
            p.runtime,
            p.zero_page,
            plan.e820_total,
            match plan.map {
                MapSource::StartInfo => "start_info",
                MapSource::Supplied => "XENMEM_memory_map",
            },
            match plan.cmdline {
                CmdlineSource::StartInfo => "start_info",
                CmdlineSource::Payload => "payload",
                CmdlineSource::None => "nowhere (empty)",
            },
        )?;
        match p.initrd {
            Some((a, n)) => write!(f, ", initrd {a:#x}+{n:#x}")?,
            None => f.write_str(", no initrd")?,
        }
        match plan.subarch {
            SubarchPolicy::Pc => f.write_str(", subarch pc")?,
            SubarchPolicy::Xen => f.write_str(", subarch xen")?,
        }
        match plan.rsdp {
            Some((a, by)) => write!(f, ", rsdp {a:#x} from {}", by.as_str()),
            None => f.write_str(", no rsdp"),
        }
    }
}

/// Enters the kernel at `entry` per the 64-bit boot protocol, with the
/// runtime's GDT still loaded: its 64-bit code and data descriptors sit at
/// the selectors Linux's boot protocol names (`machine::gdt::rt`).
///
/// # Safety
/// `entry` must be a loaded kernel's 64-bit entry and `zero_page` its zero
/// page, both identity-mapped.
unsafe fn jump(entry: u64, zero_page: u64) -> ! {
    let cs = SegmentSelector::new(long64::CS >> 3, Ring0);
    let ds = SegmentSelector::new(long64::DS >> 3, Ring0);
    // SAFETY: the selectors index the runtime's GDT, loaded at entry:
    // 64-bit code at 0x10, data at 0x18 (asserted in `machine::gdt`).
    unsafe {
        CS::set_reg(cs);
        DS::set_reg(ds);
        ES::set_reg(ds);
        SS::set_reg(ds);
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
