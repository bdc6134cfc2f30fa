//! The zero-page stub's whole decision, as a function of memory: which
//! kernel, initrd, command line, memory map and subarch policy; where the
//! kernel and zero page go; and the finished zero page. `pvh-stub` runs it
//! in the guest over identity-mapped RAM and then only copies bytes and
//! jumps; tests run the very same function on the host over the memory a
//! host loader wrote, so the stub's decisions can be compared with the
//! host's (`tests/tests/policy_agreement.rs`).
//!
//! Inputs, in the stub's order:
//! 1. the start_info (read with [`StartInfoView`]);
//! 2. the kernel: the payload `pvh wrap` embedded at [`PAYLOAD_ADDR`], else
//!    the first start_info module that parses as a bzImage;
//! 3. the subarch policy: the payload header's (version 2), or, for a
//!    module kernel, the `pvh.subarch=` option in that module's command
//!    line ([`options`]); PC otherwise;
//! 4. the initrd: for a payload kernel the hypervisor's module 0 if any,
//!    else the embedded one; for a module kernel the module after it;
//! 5. the command line: the start_info's if non-empty, else the payload's;
//! 6. the memory map: the start_info's, else the one the caller supplies
//!    (the stub asks Xen with `XENMEM_memory_map`);
//! 7. the RSDP: the start_info's `rsdp_paddr`, else where a PC OS finds
//!    one ([`crate::acpi::rsdp::locate`]: Firecracker passes 0 although it
//!    builds tables), passed on as `acpi_rsdp_addr`.
//!
//! Then [`KernelNeeds::of`], the one translation
//! ([`crate::zeropage::translate`]), the one allocator ([`super::place`])
//! over the map in canonical form ([`crate::e820::canonical`]: an
//! out-of-order, split or overlapping map hides no room), clear of every
//! ACPI table wherever the map puts it ([`crate::acpi::table_ranges`]),
//! and [`super::finish_zero_page`]. docs/conformance.md lists the
//! hypervisors that need each of these.

use super::{
    InitrdRequest, InitrdSource, KernelNeeds, LinuxBootError, LinuxPlacement, LinuxRequest,
    PLACE_EXTRA_RANGES, RangeList, finish_zero_page, not_a_kernel, place, start_info_ranges,
};
use crate::acpi::{self, rsdp};
use crate::e820::{TooManyEntries, canonical, canonical_len};
use crate::machine::PAYLOAD_ADDR;
use crate::memory::{OutOfRange, PhysBytes, PhysWrite, write_obj};
use crate::payload::{Payload, PayloadError, read_payload};
use crate::reader::{ReadError, StartInfoView};
use crate::start_info::MemmapEntry;
use crate::zeropage::{
    InitrdChoice, SubarchPolicy, TranslateError, TranslateOptions, e820_ext_size, e820_scratch_len,
    translate, write_e820_ext,
};
use pvh_bootparams::{BootParams, BzImage, E820Entry, E820Type, ImageError, ZERO_PAGE_SIZE};

/// Most memory-map entries the stub handles.
pub const MAX_MAP: usize = 256;
/// Most ranges the stub tracks as in use.
pub const MAX_AVOID: usize = 256;
/// The key of the stub's subarch option in a kernel module's command line.
pub const SUBARCH_OPTION: &str = "pvh.subarch";

/// Why the stub cannot boot the kernel: printed as one line
/// (`stub: error: <this>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// The start_info is unusable.
    #[error("start_info: {0}")]
    StartInfo(#[from] ReadError),
    /// The `pvh wrap` payload header is unusable.
    #[error("embedded payload: {0}")]
    Payload(#[from] PayloadError),
    /// Neither a payload nor any module.
    #[error("no kernel: no embedded payload and no start_info modules")]
    NoKernel,
    /// No module is a bzImage; the first one's reason.
    #[error(
        "no kernel: no embedded payload and module 0 ({size:#x} bytes at {addr:#x}) is not a bzImage: {reason}"
    )]
    ModuleNotKernel {
        /// Module 0's address.
        addr: u64,
        /// Its size.
        size: u64,
        /// Why it does not parse.
        reason: ImageError,
    },
    /// A `pvh.subarch=` option with a value the stub does not know.
    #[error("kernel module option {SUBARCH_OPTION}: unknown value (expected pc or xen)")]
    BadOption,
    /// The kernel (or its initrd, command line, placement) fails the policy.
    #[error("kernel: {0}")]
    Kernel(#[from] LinuxBootError),
    /// The translation refused.
    #[error("zero page: {0}")]
    Translate(#[from] TranslateError),
    /// No memory map anywhere.
    #[error("no memory map: start_info version {0} has none and this is not Xen")]
    NoMemoryMap(u32),
    /// More memory-map entries than the stub handles.
    #[error("{count} memory-map entries, more than the {max} the stub handles")]
    MapTooLarge {
        /// Entries.
        count: u64,
        /// [`MAX_MAP`].
        max: usize,
    },
    /// A read outside memory.
    #[error("memory: {0}")]
    Memory(#[from] OutOfRange),
    /// The map in canonical form does not fit the scratch space.
    #[error("memory map: {0}")]
    Canonical(#[from] TooManyEntries),
}

/// Where the kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSource {
    /// The `pvh wrap` payload.
    Payload,
    /// This start_info module.
    Module(u32),
}

/// Where the command line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineSource {
    /// The start_info's.
    StartInfo,
    /// The payload's default.
    Payload,
    /// Nowhere: the kernel gets none.
    None,
}

/// Where the memory map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSource {
    /// The start_info's.
    StartInfo,
    /// The caller's (Xen's `XENMEM_memory_map`).
    Supplied,
}

/// What the stub is given besides memory.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Inputs<'a> {
    /// The start_info's address (EBX at entry).
    pub start_info: u64,
    /// The stub's own image (start, end): never overwritten.
    pub image: (u64, u64),
    /// A memory map for a start_info without one (version 0 under Xen).
    pub supplied_map: Option<&'a [MemmapEntry]>,
}

impl<'a> Inputs<'a> {
    /// The start_info at `start_info` and the stub's own image (start,
    /// end), with no supplied memory map.
    pub const fn new(start_info: u64, image: (u64, u64)) -> Self {
        Self {
            start_info,
            image,
            supplied_map: None,
        }
    }

    /// A memory map for a start_info without one.
    #[must_use]
    pub const fn supplied_map(mut self, supplied_map: Option<&'a [MemmapEntry]>) -> Self {
        self.supplied_map = supplied_map;
        self
    }
}

/// The stub's working memory: no allocator in a guest, and too large for
/// comfort on every call's stack frame twice.
#[derive(Debug, Clone)]
pub struct Scratch {
    e820: [E820Entry; e820_scratch_len(MAX_MAP)],
    canonical: [E820Entry; canonical_len(e820_scratch_len(MAX_MAP))],
    avoid: RangeList<MAX_AVOID>,
    place: [(u64, u64); MAX_AVOID + PLACE_EXTRA_RANGES],
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// Empty scratch.
    pub const fn new() -> Self {
        Self {
            e820: [E820Entry::new(0, 0, E820Type::RAM); e820_scratch_len(MAX_MAP)],
            canonical: [E820Entry::new(0, 0, E820Type::RAM);
                canonical_len(e820_scratch_len(MAX_MAP))],
            avoid: RangeList::new(),
            place: [(0, 0); MAX_AVOID + PLACE_EXTRA_RANGES],
        }
    }
}

/// The stub's decision.
#[derive(Debug, Clone)]
pub struct StubPlan<'s> {
    /// Where the kernel came from.
    pub source: KernelSource,
    /// Where its protected-mode code is now (start, end).
    pub code: (u64, u64),
    /// What it needs.
    pub needs: KernelNeeds,
    /// Where everything goes.
    pub placement: LinuxPlacement,
    /// The subarch policy applied.
    pub subarch: SubarchPolicy,
    /// The finished zero page (its `setup_data` is linked to the e820 node
    /// by [`write_zero_page`](Self::write_zero_page)).
    pub params: BootParams,
    /// e820 entries past the 128 the zero page holds.
    pub e820_ext: &'s [E820Entry],
    /// All e820 entries.
    pub e820_total: usize,
    /// Bytes at the zero page's address: the page and the e820 node.
    pub zero_page_size: u64,
    /// Where the memory map came from.
    pub map: MapSource,
    /// Where the command line came from.
    pub cmdline: CmdlineSource,
    /// The RSDP passed on, and how it was found.
    pub rsdp: Option<(u64, rsdp::FoundBy)>,
}

impl StubPlan<'_> {
    /// One past the highest byte the kernel reads or writes before it has
    /// its own page tables: its window, the code, the zero page, the initrd
    /// and the command line. The stub's identity map must reach it.
    pub fn map_top(&self) -> u64 {
        let p = &self.placement;
        let mut top = p.runtime.saturating_add(p.window).max(self.code.1);
        top = top.max(p.load.saturating_add(self.needs.code_size));
        top = top.max(p.zero_page.saturating_add(self.zero_page_size));
        if let Some((a, n)) = p.initrd {
            top = top.max(a.saturating_add(n));
        }
        if let Some((a, n)) = p.cmdline {
            top = top.max(a.saturating_add(n).saturating_add(1));
        }
        top
    }

    /// Writes the `SETUP_E820_EXT` node (if any) and the zero page. Call
    /// after the code is where [`LinuxPlacement::load`] says.
    pub fn write_zero_page<M: PhysWrite + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<(), OutOfRange> {
        let zp = self.placement.zero_page;
        if !self.e820_ext.is_empty() {
            write_e820_ext(
                mem,
                zp + ZERO_PAGE_SIZE as u64,
                self.e820_ext,
                &mut self.params,
            )?;
        }
        write_obj(mem, zp, &self.params)
    }
}

/// The stub's options in a kernel module's command line: whitespace-
/// separated words; `pvh.subarch=pc` or `pvh.subarch=xen` sets the subarch
/// policy (the last one wins, as on a kernel command line); other words are
/// left alone (the string may be the kernel's own command line under a
/// loader that passes one there).
pub fn options(cmdline: &[u8]) -> Result<SubarchPolicy, StubError> {
    let mut policy = SubarchPolicy::Pc;
    for word in cmdline.split(u8::is_ascii_whitespace) {
        let Some(value) = word
            .strip_prefix(SUBARCH_OPTION.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        else {
            continue;
        };
        policy = match value {
            b"pc" => SubarchPolicy::Pc,
            b"xen" => SubarchPolicy::Xen,
            _ => return Err(StubError::BadOption),
        };
    }
    Ok(policy)
}

/// The command-line option that asks a stub for `policy` through a kernel
/// module's command line (what `pvh_loader` passes on the stub path).
pub fn option_for(policy: SubarchPolicy) -> &'static str {
    match policy {
        SubarchPolicy::Pc => "pvh.subarch=pc",
        SubarchPolicy::Xen => "pvh.subarch=xen",
    }
}

/// Makes the stub's whole decision over `mem` (see the module docs).
pub fn plan<'s, M: PhysBytes + ?Sized>(
    mem: &M,
    inputs: &Inputs<'_>,
    scratch: &'s mut Scratch,
) -> Result<StubPlan<'s>, StubError> {
    let view = StartInfoView::read(mem, inputs.start_info)?;
    let nr_modules = view.module_count();

    // The kernel, its initrd and its policy.
    // Memory that does not reach the payload address holds no payload.
    let payload = match read_payload(mem, PAYLOAD_ADDR) {
        Err(PayloadError::Unreadable(_)) => None,
        other => other?,
    };
    let payload: Option<(Payload, SubarchPolicy)> = payload.map(|(_, p)| {
        let subarch = p.subarch;
        (p, subarch)
    });
    let (kernel_range, source, initrd_source, subarch) = match &payload {
        Some((p, subarch)) => {
            let embedded = p.initrd.as_ref().map(|r| (r.start, r.end - r.start));
            let initrd = InitrdSource::for_payload(embedded, nr_modules);
            (p.kernel.clone(), KernelSource::Payload, initrd, *subarch)
        }
        None => {
            let mut found = None;
            let mut first_error = None;
            for m in view.modules() {
                let bytes = mem.bytes(m.entry.paddr, m.entry.size)?;
                match BzImage::parse(bytes) {
                    Ok(_) => {
                        found = Some(m);
                        break;
                    }
                    // A Linux kernel, but not one to boot: that is the
                    // kernel, and the policy says why not.
                    Err(reason) if !not_a_kernel(&reason) => {
                        return Err(LinuxBootError::Image(reason).into());
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
            let subarch = match m.cmdline_len {
                Some(len) => options(mem.bytes(m.entry.cmdline_paddr, u64::from(len))?)?,
                None => SubarchPolicy::Pc,
            };
            let initrd = InitrdSource::after_module(m.index, nr_modules);
            let start = m.entry.paddr;
            (
                start..start.saturating_add(m.entry.size),
                KernelSource::Module(m.index),
                initrd,
                subarch,
            )
        }
    };
    let kernel_bytes = mem.bytes(kernel_range.start, kernel_range.end - kernel_range.start)?;
    let image = BzImage::parse(kernel_bytes).map_err(LinuxBootError::from)?;
    let needs = KernelNeeds::of(&image)?;
    let code = (
        kernel_range.start + image.setup_size() as u64,
        kernel_range.end,
    );

    // The memory map: the start_info's, else the caller's.
    let map = if view.memmap_len() > 0 {
        if view.memmap_len() as usize > MAX_MAP {
            return Err(StubError::MapTooLarge {
                count: u64::from(view.memmap_len()),
                max: MAX_MAP,
            });
        }
        MapSource::StartInfo
    } else {
        match inputs.supplied_map {
            Some(m) if m.len() > MAX_MAP => {
                return Err(StubError::MapTooLarge {
                    count: m.len() as u64,
                    max: MAX_MAP,
                });
            }
            Some(_) => MapSource::Supplied,
            None => return Err(StubError::NoMemoryMap(view.version())),
        }
    };

    // The zero page, from the one translation (initrd and command line are
    // the placement's, below).
    let options = TranslateOptions {
        subarch,
        initrd: InitrdChoice::None,
        setup_header: Some(image.header()),
        memmap: match map {
            MapSource::StartInfo => None,
            MapSource::Supplied => inputs.supplied_map,
        },
    };
    let Scratch {
        e820: e820_scratch,
        canonical: canonical_scratch,
        avoid,
        place: place_scratch,
    } = scratch;
    let mut params = BootParams::zeroed();
    let t = translate(&view, &options, e820_scratch, &mut params)?;
    let e820_scratch: &'s [E820Entry] = e820_scratch;
    let acpi_root = rsdp::locate(mem, view.rsdp_paddr());
    if let Some((addr, rsdp::FoundBy::Scan)) = acpi_root {
        params.acpi_rsdp_addr = addr;
    }

    let (cmdline, cmdline_source) = match view.cmdline().filter(|&(_, len)| len > 0) {
        Some((addr, len)) => (Some((addr, u64::from(len))), CmdlineSource::StartInfo),
        None => match payload.as_ref().and_then(|(p, _)| p.cmdline.clone()) {
            Some(r) => (Some((r.start, r.end - r.start)), CmdlineSource::Payload),
            None => (None, CmdlineSource::None),
        },
    };
    let initrd = match initrd_source {
        InitrdSource::None => InitrdRequest::None,
        InitrdSource::Embedded(addr, size) => InitrdRequest::At { addr, size },
        InitrdSource::Module(i) => match view.module(i) {
            Some(m) => InitrdRequest::At {
                addr: m.entry.paddr,
                size: m.entry.size,
            },
            None => InitrdRequest::None,
        },
    };

    // Everything in use but the kernel's code: the stub, the start_info
    // and what it lists, the bzImage's setup sectors, the rest of the
    // payload.
    *avoid = RangeList::new();
    avoid.push(
        inputs.image.0,
        inputs.image.1.saturating_sub(inputs.image.0),
    )?;
    start_info_ranges(&view, Some(kernel_range.start), avoid)?;
    avoid.push(kernel_range.start, code.0 - kernel_range.start)?;
    if let Some((p, _)) = &payload {
        avoid.push(p.whole.start, kernel_range.start - p.whole.start)?;
        avoid.push(
            kernel_range.end,
            p.whole.end.saturating_sub(kernel_range.end),
        )?;
    }
    // The ACPI tables, wherever the map says they are (Cloud Hypervisor's
    // are outside it).
    if let Some((addr, _)) = acpi_root {
        acpi::table_ranges(mem, addr, |start, len| avoid.push(start, len))?;
    }

    let e820 = &e820_scratch[..t.e820_total];
    let ext_len = t.e820_ext(e820_scratch).len();
    let zero_page_size = ZERO_PAGE_SIZE as u64
        + if ext_len == 0 {
            0
        } else {
            e820_ext_size(ext_len)
        };
    let request = LinuxRequest {
        needs,
        code: Some(code),
        zero_page_size,
        initrd,
        cmdline,
    };
    let n = canonical(e820, canonical_scratch)?;
    let placement = place(
        &request,
        &canonical_scratch[..n],
        avoid.as_slice(),
        place_scratch,
    )?;
    finish_zero_page(&mut params, &placement);
    Ok(StubPlan {
        source,
        code,
        needs,
        placement,
        subarch,
        params,
        e820_ext: t.e820_ext(e820_scratch),
        e820_total: t.e820_total,
        zero_page_size,
        map,
        cmdline: cmdline_source,
        rsdp: acpi_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pick_the_subarch_and_leave_other_words() {
        assert_eq!(options(b""), Ok(SubarchPolicy::Pc));
        assert_eq!(options(b"console=ttyS0 quiet"), Ok(SubarchPolicy::Pc));
        assert_eq!(options(b"pvh.subarch=xen"), Ok(SubarchPolicy::Xen));
        assert_eq!(
            options(b"a pvh.subarch=xen\tb pvh.subarch=pc"),
            Ok(SubarchPolicy::Pc)
        );
        assert_eq!(options(b"pvh.subarchy=xen"), Ok(SubarchPolicy::Pc));
        assert_eq!(options(b"pvh.subarch=lguest"), Err(StubError::BadOption));
        assert_eq!(options(b"pvh.subarch="), Err(StubError::BadOption));
        for p in [SubarchPolicy::Pc, SubarchPolicy::Xen] {
            assert_eq!(options(option_for(p).as_bytes()), Ok(p));
        }
    }
}
