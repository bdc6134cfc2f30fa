//! The one writer of start_info bytes in the workspace.
//!
//! A caller (the loader, the hypervisor, a test) describes the start_info in
//! a [`StartInfoSpec`] and says where each part goes in a [`Placement`];
//! [`write_start_info`] checks that the parts do not overlap each other or
//! the modules, then writes tables and strings first and the header last, so
//! a half-written block never carries the magic.

use crate::Which;
use crate::memory::{OutOfRange, PhysWrite, write_obj};
use crate::reader::Limits;
use crate::start_info::{
    MemmapEntry, ModlistEntry, START_INFO_MAGIC, START_INFO_V0_SIZE, START_INFO_V1_SIZE, SifFlags,
    StartInfo,
};
use zerocopy::IntoBytes;

/// A module to describe: where its contents already are, and its command
/// line (without NUL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ModuleSpec<'a> {
    /// Address of the contents in guest memory.
    pub paddr: u64,
    /// Size of the contents.
    pub size: u64,
    /// Command line, without NUL; must not contain NUL.
    pub cmdline: Option<&'a [u8]>,
}

impl<'a> ModuleSpec<'a> {
    /// A module of `size` bytes at `paddr`, without a command line.
    pub const fn new(paddr: u64, size: u64) -> Self {
        Self {
            paddr,
            size,
            cmdline: None,
        }
    }

    /// Its command line, without NUL.
    #[must_use]
    pub const fn cmdline(mut self, cmdline: Option<&'a [u8]>) -> Self {
        self.cmdline = cmdline;
        self
    }
}

/// Everything a start_info says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StartInfoSpec<'a> {
    /// 0 (no memory map; what Xen's dom0 builder passes) or 1.
    pub version: u32,
    /// Flags.
    pub flags: SifFlags,
    /// Command line, without NUL; must not contain NUL.
    pub cmdline: Option<&'a [u8]>,
    /// ACPI RSDP address, 0 if none.
    pub rsdp_paddr: u64,
    /// Modules, in order (module 0 is the initrd by convention).
    pub modules: &'a [ModuleSpec<'a>],
    /// Memory map (version 1 only).
    pub memmap: &'a [MemmapEntry],
}

impl<'a> StartInfoSpec<'a> {
    /// A start_info of `version` with no flags, command line, RSDP,
    /// module or memory map ([`StartInfoSpec::default`] is version 0).
    pub const fn new(version: u32) -> Self {
        Self {
            version,
            flags: SifFlags::empty(),
            cmdline: None,
            rsdp_paddr: 0,
            modules: &[],
            memmap: &[],
        }
    }

    /// The version instead.
    #[must_use]
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Flags.
    #[must_use]
    pub const fn flags(mut self, flags: SifFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Command line, without NUL.
    #[must_use]
    pub const fn cmdline(mut self, cmdline: Option<&'a [u8]>) -> Self {
        self.cmdline = cmdline;
        self
    }

    /// ACPI RSDP address, 0 if none.
    #[must_use]
    pub const fn rsdp_paddr(mut self, rsdp_paddr: u64) -> Self {
        self.rsdp_paddr = rsdp_paddr;
        self
    }

    /// Modules, in order.
    #[must_use]
    pub const fn modules(mut self, modules: &'a [ModuleSpec<'a>]) -> Self {
        self.modules = modules;
        self
    }

    /// Memory map (version 1 only).
    #[must_use]
    pub const fn memmap(mut self, memmap: &'a [MemmapEntry]) -> Self {
        self.memmap = memmap;
        self
    }
}

/// Where the parts of a start_info go in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The header.
    pub start_info: u64,
    /// The module list (unused if there are no modules).
    pub modlist: u64,
    /// The memory map (unused if there is none).
    pub memmap: u64,
    /// All strings, packed one after the other, each with its NUL: first
    /// the command line, then each module's.
    pub strings: u64,
}

/// Why a start_info cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Only versions 0 and 1 are written.
    #[error("start_info version {0} cannot be written (only 0 and 1)")]
    UnsupportedVersion(u32),
    /// A version-0 start_info has no memory map.
    #[error("a version-0 start_info cannot carry a memory map ({0} entries given)")]
    MemmapInVersion0(usize),
    /// A command line contains a NUL, which would cut it short.
    #[error("{0} contains a NUL byte")]
    NulInCmdline(Which),
    /// A count or size does not fit the ABI's fields or the address space.
    #[error("{0} is too large for the start_info ABI")]
    TooLarge(&'static str),
    /// A count or a string that pvh's own start_info reader would refuse
    /// ([`Limits::DEFAULT`]): pvh never writes what it would not read.
    #[error("{what} is {value}, more than the {max} the start_info reader accepts")]
    OverReaderLimit {
        /// What is counted.
        what: Limited,
        /// Its value (a string's length includes its NUL).
        value: u64,
        /// The reader's limit.
        max: u32,
    },
    /// Two parts of the placement overlap.
    #[error(
        "{first} ({first_start:#x}..{first_end:#x}) overlaps {second} ({second_start:#x}..{second_end:#x})"
    )]
    Overlap {
        /// One part.
        first: Part,
        /// Its start.
        first_start: u64,
        /// Its end.
        first_end: u64,
        /// The other part.
        second: Part,
        /// Its start.
        second_start: u64,
        /// Its end.
        second_end: u64,
    },
    /// A part is not inside guest memory.
    #[error("{part} does not fit in guest memory: {source}")]
    Memory {
        /// Which part.
        part: Part,
        /// The failed access.
        source: OutOfRange,
    },
}

/// What a [`WriteError::OverReaderLimit`] counts: one field of
/// [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The module count ([`Limits::max_modules`]).
    Modules,
    /// The memory-map entry count ([`Limits::max_memmap_entries`]).
    MemmapEntries,
    /// A command line's length with its NUL ([`Limits::max_cmdline`]).
    Cmdline(Which),
}

impl core::fmt::Display for Limited {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Limited::Modules => f.write_str("the module count"),
            Limited::MemmapEntries => f.write_str("the memory-map entry count"),
            Limited::Cmdline(which) => write!(f, "the length of the {which} (with its NUL)"),
        }
    }
}

/// A part of a start_info block, or a module, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The header.
    StartInfo,
    /// The module list.
    ModuleList,
    /// The memory map.
    Memmap,
    /// The strings.
    Strings,
    /// The contents of module N.
    Module(u32),
}

impl core::fmt::Display for Part {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Part::StartInfo => f.write_str("start_info"),
            Part::ModuleList => f.write_str("module list"),
            Part::Memmap => f.write_str("memory map"),
            Part::Strings => f.write_str("command-line strings"),
            Part::Module(i) => write!(f, "module {i}"),
        }
    }
}

/// Sizes of the parts of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Header bytes (48 for version 0, 56 for version 1).
    pub start_info: u64,
    /// Module list bytes.
    pub modlist: u64,
    /// Memory map bytes.
    pub memmap: u64,
    /// String bytes, NULs included.
    pub strings: u64,
}

impl Sizes {
    /// The sizes `spec` needs; checks the spec on the way.
    pub fn of(spec: &StartInfoSpec<'_>) -> Result<Self, WriteError> {
        let start_info = match spec.version {
            0 => START_INFO_V0_SIZE,
            1 => START_INFO_V1_SIZE,
            v => return Err(WriteError::UnsupportedVersion(v)),
        } as u64;
        if spec.version == 0 && !spec.memmap.is_empty() {
            return Err(WriteError::MemmapInVersion0(spec.memmap.len()));
        }
        // The reader's limits, so that nothing is written that pvh's own
        // reader (the stub's, the probe's, the conformance checker's)
        // would refuse.
        let limits = Limits::DEFAULT;
        let over = |what, value: usize, max: u32| {
            (value as u64 > u64::from(max)).then_some(WriteError::OverReaderLimit {
                what,
                value: value as u64,
                max,
            })
        };
        if let Some(e) = over(Limited::Modules, spec.modules.len(), limits.max_modules) {
            return Err(e);
        }
        if let Some(e) = over(
            Limited::MemmapEntries,
            spec.memmap.len(),
            limits.max_memmap_entries,
        ) {
            return Err(e);
        }
        let table = |n: usize, size: usize| (n as u64).checked_mul(size as u64);
        let modlist = table(spec.modules.len(), size_of::<ModlistEntry>())
            .ok_or(WriteError::TooLarge("module list"))?;
        let memmap = table(spec.memmap.len(), size_of::<MemmapEntry>())
            .ok_or(WriteError::TooLarge("memory map"))?;
        let mut strings = 0u64;
        let mut add = |s: Option<&[u8]>, which: Which| -> Result<(), WriteError> {
            if let Some(s) = s {
                if s.contains(&0) {
                    return Err(WriteError::NulInCmdline(which));
                }
                if let Some(e) = over(Limited::Cmdline(which), s.len() + 1, limits.max_cmdline) {
                    return Err(e);
                }
                strings = strings
                    .checked_add(s.len() as u64 + 1)
                    .ok_or(WriteError::TooLarge("command-line strings"))?;
            }
            Ok(())
        };
        add(spec.cmdline, Which::Main)?;
        for (i, m) in spec.modules.iter().enumerate() {
            add(m.cmdline, Which::Module(i as u32))?;
        }
        Ok(Self {
            start_info,
            modlist,
            memmap,
            strings,
        })
    }

    /// Bytes of a packed block (see [`Placement::packed`]).
    pub fn packed_total(&self) -> Option<u64> {
        let align8 = |v: u64| v.checked_add(7).map(|v| v & !7);
        let mut total = align8(self.start_info)?;
        total = align8(total.checked_add(self.modlist)?)?;
        total = align8(total.checked_add(self.memmap)?)?;
        total.checked_add(self.strings)
    }
}

impl Placement {
    /// All parts one after another from `base` (8-byte aligned, in the
    /// order header, module list, memory map, strings), as Xen's toolstack
    /// and Firecracker lay them out. Returns the placement and the block's
    /// size.
    pub fn packed(base: u64, spec: &StartInfoSpec<'_>) -> Result<(Self, u64), WriteError> {
        let sizes = Sizes::of(spec)?;
        let total = sizes
            .packed_total()
            .ok_or(WriteError::TooLarge("start_info block"))?;
        base.checked_add(total)
            .ok_or(WriteError::TooLarge("start_info block"))?;
        let align8 = |v: u64| (v + 7) & !7;
        let modlist = align8(base + sizes.start_info);
        let memmap = align8(modlist + sizes.modlist);
        let strings = align8(memmap + sizes.memmap);
        Ok((
            Self {
                start_info: base,
                modlist,
                memmap,
                strings,
            },
            total,
        ))
    }
}

/// What [`write_start_info`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The header as written.
    pub header: StartInfo,
    /// Part sizes.
    pub sizes: Sizes,
}

fn range(part: Part, start: u64, len: u64) -> Result<(Part, u64, u64), WriteError> {
    let end = start
        .checked_add(len)
        .ok_or(WriteError::TooLarge("placement"))?;
    Ok((part, start, end))
}

/// Writes `spec` at `placement` in `mem`.
pub fn write_start_info<M: PhysWrite + ?Sized>(
    mem: &mut M,
    spec: &StartInfoSpec<'_>,
    placement: &Placement,
) -> Result<Written, WriteError> {
    let sizes = Sizes::of(spec)?;
    let mut parts = [(Part::StartInfo, 0, 0); 4];
    let mut n = 0;
    for (part, start, len) in [
        (Part::StartInfo, placement.start_info, sizes.start_info),
        (Part::ModuleList, placement.modlist, sizes.modlist),
        (Part::Memmap, placement.memmap, sizes.memmap),
        (Part::Strings, placement.strings, sizes.strings),
    ] {
        if len > 0 {
            parts[n] = range(part, start, len)?;
            n += 1;
        }
    }
    let parts = &parts[..n];
    let overlap = |a: (Part, u64, u64), b: (Part, u64, u64)| -> Result<(), WriteError> {
        if a.1 < b.2 && b.1 < a.2 {
            return Err(WriteError::Overlap {
                first: a.0,
                first_start: a.1,
                first_end: a.2,
                second: b.0,
                second_start: b.1,
                second_end: b.2,
            });
        }
        Ok(())
    };
    for (i, &a) in parts.iter().enumerate() {
        for &b in &parts[i + 1..] {
            overlap(a, b)?;
        }
    }
    for (i, m) in spec.modules.iter().enumerate() {
        if m.size > 0 {
            let module = range(Part::Module(i as u32), m.paddr, m.size)?;
            for &p in parts {
                overlap(p, module)?;
            }
        }
    }

    let mem_err = |part| move |source| WriteError::Memory { part, source };
    // Strings first: the tables point at them.
    let mut at = placement.strings;
    let mut put = |mem: &mut M, s: Option<&[u8]>| -> Result<u64, WriteError> {
        let Some(s) = s else { return Ok(0) };
        let addr = at;
        mem.write(addr, s).map_err(mem_err(Part::Strings))?;
        mem.write(addr + s.len() as u64, &[0])
            .map_err(mem_err(Part::Strings))?;
        at = addr + s.len() as u64 + 1;
        Ok(addr)
    };
    let cmdline_paddr = put(mem, spec.cmdline)?;
    for (i, m) in spec.modules.iter().enumerate() {
        let entry = ModlistEntry {
            paddr: m.paddr,
            size: m.size,
            cmdline_paddr: put(mem, m.cmdline)?,
            reserved: 0,
        };
        let addr = placement.modlist + i as u64 * size_of::<ModlistEntry>() as u64;
        write_obj(mem, addr, &entry).map_err(mem_err(Part::ModuleList))?;
    }
    if !spec.memmap.is_empty() {
        mem.write(placement.memmap, spec.memmap.as_bytes())
            .map_err(mem_err(Part::Memmap))?;
    }
    let has = |len: usize, addr: u64| if len > 0 { addr } else { 0 };
    let header = StartInfo {
        magic: START_INFO_MAGIC,
        version: spec.version,
        flags: spec.flags.bits(),
        nr_modules: spec.modules.len() as u32,
        modlist_paddr: has(spec.modules.len(), placement.modlist),
        cmdline_paddr,
        rsdp_paddr: spec.rsdp_paddr,
        memmap_paddr: has(spec.memmap.len(), placement.memmap),
        memmap_entries: spec.memmap.len() as u32,
        reserved: 0,
    };
    let bytes = &header.as_bytes()[..sizes.start_info as usize];
    mem.write(placement.start_info, bytes)
        .map_err(mem_err(Part::StartInfo))?;
    Ok(Written { header, sizes })
}
