//! The one Linux 64-bit boot policy: what a bzImage needs from its loader
//! ([`KernelNeeds`]), where the kernel, initrd and zero page go
//! ([`place`]), and how the zero page is finished ([`finish_zero_page`]).
//!
//! Every caller decides through these functions and nothing else: the guest
//! stub (through [`stub::plan`], which gathers its inputs from a start_info
//! and a `pvh wrap` payload), the host loader's Linux 64-bit path
//! (`pvh_loader::plan`/`load`), `pvh wrap` and `pvh inspect`. The rules and
//! their sources (Documentation/arch/x86/boot.rst, Linux's own kexec loader)
//! are in `docs/guest.md` ("One boot policy").
//!
//! Pure functions over an e820 map and a list of ranges in use, tested on
//! the host; no allocator.

use crate::machine::{FOUR_GIB, LINUX64_ENTRY_OFFSET, ONE_MIB, PAGE_SIZE, ZERO_PAGE_MIN};
use crate::memory::PhysRead;
use crate::reader::StartInfoView;
use crate::start_info::{MemmapEntry, ModlistEntry, StartInfo};
use core::fmt;
use core::mem::size_of;
use pvh_bootparams::{
    BootParams, BzImage, E820Entry, E820Type, ImageError, LoadFlags, SetupHeader, XLoadFlags,
};

pub mod stub;

pub use crate::machine::RSDP_V2_LEN;

/// What a placement is for, in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The kernel's `init_size` window.
    Kernel,
    /// The zero page (and its `SETUP_E820_EXT` node).
    ZeroPage,
    /// The initrd.
    Initrd,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "the kernel",
            Self::ZeroPage => "the zero page",
            Self::Initrd => "the initrd",
        })
    }
}

/// Why a kernel cannot be booted, or placed. The same value (and text)
/// reaches the user from every caller: the stub's console line, `pvh boot`,
/// `pvh inspect` and `pvh wrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinuxBootError {
    /// The image is not a usable bzImage for the 64-bit boot protocol.
    #[error("not a usable bzImage: {0}")]
    Image(#[from] ImageError),
    /// A relocatable kernel's `kernel_alignment` is not a power of two (its
    /// decompressor uses it as a mask).
    #[error("kernel_alignment {0:#x} is not a power of two")]
    BadAlignment(u32),
    /// `init_size` is smaller than the code to load.
    #[error("init_size {init_size:#x} is smaller than the {code:#x}-byte kernel")]
    BadInitSize {
        /// `init_size`.
        init_size: u64,
        /// Protected-mode code size.
        code: u64,
    },
    /// The command line is longer than the kernel's `cmdline_size`.
    #[error("command line of {len} bytes exceeds the kernel's cmdline_size {max}")]
    CmdlineTooLong {
        /// Length without the NUL.
        len: u64,
        /// `cmdline_size`.
        max: u64,
    },
    /// The command line lies where the kernel cannot reach it.
    #[error(
        "command line at {addr:#x}..{end:#x} is above 4 GiB and the kernel lacks XLF_CAN_BE_LOADED_ABOVE_4G"
    )]
    CmdlineTooHigh {
        /// Its address.
        addr: u64,
        /// One past its NUL.
        end: u64,
    },
    /// The initrd lies above what the kernel accepts.
    #[error("initrd ends at {end:#x}, above the kernel's initrd_addr_max {max:#x}")]
    InitrdTooHigh {
        /// One past the initrd's last byte.
        end: u64,
        /// The last byte the kernel accepts.
        max: u64,
    },
    /// More ranges to avoid than the caller's scratch space holds.
    #[error("{ranges} ranges in use, more than the {capacity} the stub can track")]
    TooManyRanges {
        /// Ranges needed.
        ranges: usize,
        /// Capacity.
        capacity: usize,
    },
    /// No free RAM range can hold a part.
    #[error("no room for {part}: {size:#x} bytes aligned to {align:#x} in free RAM")]
    NoRoom {
        /// What could not be placed.
        part: Part,
        /// Bytes needed.
        size: u64,
        /// Alignment needed.
        align: u64,
    },
}

/// Whether a bzImage parse error means "not a Linux kernel at all" (no
/// boot flag, no "HdrS", too short for a header) rather than "a Linux
/// kernel pvh cannot use": the one classification the stub's module scan,
/// the host loader and `pvh inspect` share.
pub fn not_a_kernel(e: &ImageError) -> bool {
    matches!(
        e,
        ImageError::BadBootFlag(_) | ImageError::NoHdrS(_) | ImageError::TooShort { .. }
    )
}

/// What a kernel needs from its loader, from its setup header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelNeeds {
    /// `init_size`: bytes the kernel uses from its runtime start before it
    /// looks at the memory map.
    pub init_size: u64,
    /// Bytes of protected-mode code to load.
    pub code_size: u64,
    /// The kernel's own `kernel_alignment` (what its decompressor rounds
    /// its load address up to).
    pub kernel_alignment: u64,
    /// Alignment pvh loads a relocatable kernel at: `kernel_alignment`, at
    /// least a page. A page for a kernel that is not relocatable.
    pub align: u64,
    /// `pref_address` (1 MiB when the header says 0).
    pub pref_address: u64,
    /// `relocatable_kernel != 0`.
    pub relocatable: bool,
    /// `XLF_CAN_BE_LOADED_ABOVE_4G`: kernel, zero page, command line and
    /// initrd may be above 4 GiB.
    pub above_4g: bool,
    /// `initrd_addr_max`: the last byte the initrd may occupy (unless
    /// [`above_4g`](Self::above_4g) and the initrd may go high).
    pub initrd_addr_max: u64,
    /// `cmdline_size`: the longest command line, without its NUL.
    pub cmdline_max: u64,
}

impl KernelNeeds {
    /// Checks `image` for the 64-bit boot protocol and reads what it needs:
    /// protocol 2.12+ and `XLF_KERNEL_64`; for a relocatable kernel a
    /// power-of-two `kernel_alignment`; `init_size` at least the code size
    /// (Linux's kexec refuses a smaller one too).
    pub fn of(image: &BzImage<'_>) -> Result<Self, LinuxBootError> {
        image.check_64bit_boot()?;
        let hdr: &SetupHeader = image.header();
        let relocatable = hdr.relocatable_kernel != 0;
        let kernel_alignment = hdr.kernel_alignment;
        if relocatable && !kernel_alignment.is_power_of_two() {
            return Err(LinuxBootError::BadAlignment(kernel_alignment));
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
            kernel_alignment: u64::from(kernel_alignment),
            align: if relocatable {
                u64::from(kernel_alignment).max(PAGE_SIZE)
            } else {
                PAGE_SIZE
            },
            pref_address: if pref == 0 { ONE_MIB } else { pref },
            relocatable,
            above_4g: hdr
                .xload_flags()
                .contains(XLoadFlags::CAN_BE_LOADED_ABOVE_4G),
            initrd_addr_max: u64::from(hdr.initrd_addr_max),
            cmdline_max: u64::from(hdr.cmdline_size),
        })
    }

    /// The kernel's runtime start for a load address, by the algorithm of
    /// boot.rst (`init_size`): a relocatable kernel loaded below
    /// `pref_address` moves itself up to it, and rounds up to its
    /// alignment; one that is not relocatable runs at `pref_address`.
    /// `None` if that wraps.
    pub fn runtime_start(&self, load: u64) -> Option<u64> {
        if !self.relocatable {
            return Some(self.pref_address);
        }
        align_up(load.max(self.pref_address), self.kernel_alignment)
    }

    /// Bytes reserved from the runtime start: `init_size`, page-rounded
    /// (as Linux's kexec does).
    pub fn window(&self) -> u64 {
        align_up(self.init_size, PAGE_SIZE).unwrap_or(u64::MAX)
    }

    /// One past the highest byte the kernel, zero page and command line may
    /// use: 4 GiB, or the end of the address space with
    /// `XLF_CAN_BE_LOADED_ABOVE_4G`.
    pub fn limit(&self) -> u64 {
        if self.above_4g { u64::MAX } else { FOUR_GIB }
    }

    /// One past the last byte the initrd may occupy: unlimited when the
    /// kernel has `XLF_CAN_BE_LOADED_ABOVE_4G` and the initrd may go high,
    /// else `initrd_addr_max + 1` (boot.rst; what Linux's kexec does).
    pub fn initrd_limit(&self, allow_high: bool) -> u64 {
        if self.above_4g && allow_high {
            u64::MAX
        } else {
            self.initrd_addr_max.saturating_add(1).min(FOUR_GIB)
        }
    }

    /// Checks an initrd that already lies at `addr`.
    pub fn check_initrd(
        &self,
        addr: u64,
        size: u64,
        allow_high: bool,
    ) -> Result<(), LinuxBootError> {
        let end = addr.saturating_add(size);
        if size > 0 && end > self.initrd_limit(allow_high) {
            return Err(LinuxBootError::InitrdTooHigh {
                end,
                max: self.initrd_addr_max,
            });
        }
        Ok(())
    }

    /// Checks a command line's length (without its NUL) against
    /// `cmdline_size`.
    pub fn check_cmdline_len(&self, len: u64) -> Result<(), LinuxBootError> {
        if len > self.cmdline_max {
            return Err(LinuxBootError::CmdlineTooLong {
                len,
                max: self.cmdline_max,
            });
        }
        Ok(())
    }

    /// Checks a command line that already lies at `addr`: its length, and
    /// that it (with its NUL) is below 4 GiB unless the kernel reads it
    /// from anywhere.
    pub fn check_cmdline(&self, addr: u64, len: u64) -> Result<(), LinuxBootError> {
        self.check_cmdline_len(len)?;
        let end = addr.saturating_add(len).saturating_add(1);
        if end > self.limit() {
            return Err(LinuxBootError::CmdlineTooHigh { addr, end });
        }
        Ok(())
    }
}

/// A request for free RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Take the highest fitting address instead of the lowest.
    pub top_down: bool,
}

impl Request {
    /// `size` bytes aligned to `align`, in `[min, limit)`, lowest address
    /// first, no preferred address.
    pub const fn new(size: u64, align: u64, min: u64, limit: u64) -> Self {
        Self {
            size,
            align,
            min,
            limit,
            preferred: None,
            top_down: false,
        }
    }

    /// An address to try first.
    #[must_use]
    pub const fn preferred(mut self, preferred: Option<u64>) -> Self {
        self.preferred = preferred;
        self
    }

    /// Take the highest fitting address instead of the lowest.
    #[must_use]
    pub const fn top_down(mut self, top_down: bool) -> Self {
        self.top_down = top_down;
        self
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < a.1 && b.0 < b.1 && a.0 < b.1 && b.0 < a.1
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    let mask = align.max(1) - 1;
    v.checked_add(mask).map(|v| v & !mask)
}

fn align_down(v: u64, align: u64) -> u64 {
    v & !(align.max(1) - 1)
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

/// Finds the lowest (or, `top_down`, the highest) address satisfying `req`
/// (after trying `req.preferred`), in RAM per `e820`, clear of non-RAM
/// entries and of `avoid` (half-open ranges). Each step of the search
/// moves the candidate past some blocking range, so it ends after at most
/// (RAM entries) x (blockers + 1) steps.
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
            .filter(|&(s, e)| s < e)
    };
    let steps = blockers().count();
    let mut best: Option<u64> = None;
    for ram in e820.iter().filter(|e| { e.type_ } == E820Type::RAM) {
        let Some(ram_end) = ram.end() else { continue };
        let lo = ram.addr.max(req.min);
        let hi = ram_end.min(req.limit);
        let found = search(lo, hi, req, &blockers, steps);
        if let Some(at) = found {
            best = Some(match best {
                Some(b) if req.top_down => b.max(at),
                Some(b) => b.min(at),
                None => at,
            });
        }
    }
    best.filter(|&b| fits(b))
}

/// The first fit in `lo..hi` going up (or, `req.top_down`, down): each
/// step jumps past the blockers in the way.
fn search<I: Iterator<Item = (u64, u64)>>(
    lo: u64,
    hi: u64,
    req: &Request,
    blockers: &impl Fn() -> I,
    steps: usize,
) -> Option<u64> {
    let mut at = if req.top_down {
        align_down(hi.checked_sub(req.size)?, req.align)
    } else {
        align_up(lo, req.align)?
    };
    for _ in 0..=steps {
        let end = at.checked_add(req.size)?;
        if at < lo || end > hi {
            return None;
        }
        let mut hits = blockers().filter(|&b| overlaps(b, (at, end))).peekable();
        if hits.peek().is_none() {
            return Some(at);
        }
        let next = if req.top_down {
            let below = hits.map(|b| b.0).min()?;
            align_down(below.checked_sub(req.size)?, req.align)
        } else {
            align_up(hits.map(|b| b.1).max()?, req.align)?
        };
        // Each step must move, away from where it started.
        if (req.top_down && next >= at) || (!req.top_down && next <= at) {
            return None;
        }
        at = next;
    }
    None
}

/// Where the initrd comes from, for [`place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdRequest {
    /// No initrd.
    None,
    /// Already in memory here (the stub: a module, or the `pvh wrap`
    /// payload's); checked against the kernel's limits.
    At {
        /// Address.
        addr: u64,
        /// Size.
        size: u64,
    },
    /// To be placed (the host loader): page-aligned, top-down, at or above
    /// 1 MiB, below the kernel's initrd limit.
    Place {
        /// Size.
        size: u64,
        /// May go above 4 GiB if the kernel allows.
        allow_high: bool,
    },
}

/// What [`place`] places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinuxRequest {
    /// The kernel's needs.
    pub needs: KernelNeeds,
    /// Where the protected-mode code is now (start, end), if it is in
    /// memory already (the stub); `None` when the caller copies it to the
    /// chosen address (the host loader).
    pub code: Option<(u64, u64)>,
    /// Bytes for the zero page plus the `SETUP_E820_EXT` node.
    pub zero_page_size: u64,
    /// The initrd.
    pub initrd: InitrdRequest,
    /// The command line (address, length without NUL), where it already is.
    pub cmdline: Option<(u64, u64)>,
}

impl LinuxRequest {
    /// Places a kernel with `needs`, a zero page (plus e820 node) of
    /// `zero_page_size` bytes and `initrd`; the code is copied by the
    /// caller and there is no command line in memory yet.
    pub const fn new(needs: KernelNeeds, zero_page_size: u64, initrd: InitrdRequest) -> Self {
        Self {
            needs,
            code: None,
            zero_page_size,
            initrd,
            cmdline: None,
        }
    }

    /// Where the protected-mode code already is (start, end).
    #[must_use]
    pub const fn code(mut self, code: Option<(u64, u64)>) -> Self {
        self.code = code;
        self
    }

    /// Where the command line already is (address, length without NUL).
    #[must_use]
    pub const fn cmdline(mut self, cmdline: Option<(u64, u64)>) -> Self {
        self.cmdline = cmdline;
        self
    }
}

/// Where [`place`] put things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxPlacement {
    /// Where the protected-mode code is loaded: the entry is at
    /// [`entry`](Self::entry), `code32_start` says this.
    pub load: u64,
    /// The kernel's runtime start (boot.rst): `init_size` bytes from here
    /// are the kernel's before it reads the memory map.
    pub runtime: u64,
    /// Bytes reserved from `runtime` ([`KernelNeeds::window`]).
    pub window: u64,
    /// Whether the code must be copied to `load` (false: it is there).
    pub copy: bool,
    /// The zero page, followed by the `SETUP_E820_EXT` node if any.
    pub zero_page: u64,
    /// The initrd (address, size).
    pub initrd: Option<(u64, u64)>,
    /// The command line (address, length without NUL).
    pub cmdline: Option<(u64, u64)>,
}

impl LinuxPlacement {
    /// The 64-bit entry point: `load + 0x200`.
    pub fn entry(&self) -> u64 {
        self.load.wrapping_add(LINUX64_ENTRY_OFFSET)
    }
}

/// Extra ranges [`place`] adds to `avoid` in its scratch space.
pub const PLACE_EXTRA_RANGES: usize = 4;

/// Places a Linux 64-bit boot: the one allocator, for the stub and the
/// host loader alike.
///
/// 1. A command line and initrd that are already in memory are checked
///    ([`KernelNeeds::check_cmdline`], [`KernelNeeds::check_initrd`]).
/// 2. The kernel's runtime start is the lowest address at or above
///    `pref_address` (and 1 MiB), aligned to [`KernelNeeds::align`],
///    whose `init_size` window is free and below [`KernelNeeds::limit`];
///    for a kernel that is not relocatable, `pref_address` or nothing.
///    Loading below `pref_address` would not help: the kernel moves itself
///    there before decompressing (boot.rst, `init_size`; Linux's kexec
///    loads at or above `pref_address` for that reason).
/// 3. If the code is in memory already and its own runtime start (by the
///    boot.rst algorithm) is that same address, it stays (no copy): the
///    `pvh wrap` payload arranges this. Otherwise it is copied to the
///    runtime start. The address is the same either way.
/// 4. An initrd to place goes top-down below its limit
///    ([`KernelNeeds::initrd_limit`]), page-aligned, at or above 1 MiB.
/// 5. The zero page goes in the lowest free page at or above
///    [`ZERO_PAGE_MIN`], below 4 GiB.
///
/// `avoid` lists every range in use (half-open) except the kernel's code;
/// `scratch` must hold `avoid.len() +` [`PLACE_EXTRA_RANGES`] ranges.
pub fn place(
    req: &LinuxRequest,
    e820: &[E820Entry],
    avoid: &[(u64, u64)],
    scratch: &mut [(u64, u64)],
) -> Result<LinuxPlacement, LinuxBootError> {
    let needs = &req.needs;
    let n = avoid.len();
    let capacity = n.saturating_add(PLACE_EXTRA_RANGES);
    if scratch.len() < capacity {
        return Err(LinuxBootError::TooManyRanges {
            ranges: capacity,
            capacity: scratch.len(),
        });
    }
    if let Some((addr, len)) = req.cmdline {
        needs.check_cmdline(addr, len)?;
    }
    if let InitrdRequest::At { addr, size } = req.initrd {
        needs.check_initrd(addr, size, true)?;
    }

    // The working list: what the caller uses, then what this places.
    scratch[..n].copy_from_slice(avoid);
    let mut used = n;
    let push = |scratch: &mut [(u64, u64)], used: &mut usize, r: (u64, u64)| {
        scratch[*used] = r;
        *used += 1;
    };
    if let Some((addr, len)) = req.cmdline {
        push(
            scratch,
            &mut used,
            (addr, addr.saturating_add(len).saturating_add(1)),
        );
    }
    if let InitrdRequest::At { addr, size } = req.initrd {
        push(scratch, &mut used, (addr, addr.saturating_add(size)));
    }

    let window = needs.window();
    let no_room = |part: Part, size: u64, align: u64| LinuxBootError::NoRoom { part, size, align };
    let kernel_req = Request {
        size: window,
        align: needs.align,
        min: needs.pref_address.max(ONE_MIB),
        limit: needs.limit(),
        preferred: None,
        top_down: false,
    };
    let runtime = if needs.relocatable {
        find_free(e820, &scratch[..used], &kernel_req)
    } else {
        let at = needs.pref_address;
        let below_limit = at.checked_add(window).is_some_and(|e| e <= needs.limit());
        (below_limit && is_free(e820, &scratch[..used], at, window)).then_some(at)
    }
    .ok_or(no_room(Part::Kernel, window, needs.align))?;
    // In place only if the kernel's own move (a backward copy to the end of
    // its window) cannot overrun its source: the code must not start inside
    // the window above its start.
    let inside = |a: u64| a > runtime && a < runtime.saturating_add(window);
    let (load, copy) = match req.code {
        Some((start, _)) if needs.runtime_start(start) == Some(runtime) && !inside(start) => {
            (start, false)
        }
        _ => (runtime, true),
    };
    push(
        scratch,
        &mut used,
        (runtime, runtime.saturating_add(window)),
    );
    if let Some(code) = req.code {
        // Until the jump the code stays where it is too (a copy's source).
        push(scratch, &mut used, code);
    }

    let initrd = match req.initrd {
        InitrdRequest::None => None,
        InitrdRequest::At { addr, size } => Some((addr, size)),
        InitrdRequest::Place { size: 0, .. } => None,
        InitrdRequest::Place { size, allow_high } => {
            let rounded =
                align_up(size, PAGE_SIZE).ok_or(no_room(Part::Initrd, size, PAGE_SIZE))?;
            let r = Request {
                size: rounded,
                align: PAGE_SIZE,
                min: ONE_MIB,
                limit: needs.initrd_limit(allow_high),
                preferred: None,
                top_down: true,
            };
            let at = find_free(e820, &scratch[..used], &r).ok_or(no_room(
                Part::Initrd,
                size,
                PAGE_SIZE,
            ))?;
            push(scratch, &mut used, (at, at + rounded));
            Some((at, size))
        }
    };

    let zp = Request {
        size: req.zero_page_size,
        align: PAGE_SIZE,
        min: ZERO_PAGE_MIN,
        limit: needs.limit().min(FOUR_GIB),
        preferred: None,
        top_down: false,
    };
    let zero_page = find_free(e820, &scratch[..used], &zp).ok_or(no_room(
        Part::ZeroPage,
        req.zero_page_size,
        PAGE_SIZE,
    ))?;
    Ok(LinuxPlacement {
        load,
        runtime,
        window,
        copy,
        zero_page,
        initrd,
        cmdline: req.cmdline,
    })
}

/// Finishes a zero page for a placement: what a loader fills in after the
/// start_info translation (`crate::zeropage::translate`, which copies the
/// kernel's setup header and sets the memory map, the RSDP and the
/// subarch): `LOADED_HIGH` in `loadflags`, `code32_start` = the load
/// address, the initrd and command line with their `ext_*` halves.
pub fn finish_zero_page(bp: &mut BootParams, placement: &LinuxPlacement) {
    bp.hdr.loadflags |= LoadFlags::LOADED_HIGH.bits();
    // A 32-bit field: a kernel loaded above 4 GiB (XLF_CAN_BE_LOADED_ABOVE_4G)
    // has no 32-bit entry to name, so 0.
    bp.hdr.code32_start = u32::try_from(placement.load).unwrap_or(0);
    let (addr, size) = placement.initrd.unwrap_or((0, 0));
    bp.set_ramdisk(addr, size);
    bp.set_cmd_line_ptr(placement.cmdline.map_or(0, |(addr, _)| addr));
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
mod tests;
