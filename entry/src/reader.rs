//! Validating reader of a start_info in guest memory.
//!
//! [`StartInfoView::read`] checks, once, everything a consumer would
//! otherwise have to distrust: the magic, the version, that counts are below
//! documented limits, that every table, module and string lies inside
//! memory, and that every command line is NUL-terminated within
//! [`Limits::max_cmdline`]. Afterwards the accessors only re-read what was
//! checked. Address 0 means "absent" everywhere, as the ABI says.

use crate::memory::{OutOfRange, PhysRead, read_obj};
use crate::start_info::{
    MemmapEntry, ModlistEntry, START_INFO_MAGIC, START_INFO_V0_SIZE, SifFlags, StartInfo,
};
use zerocopy::{FromZeros, IntoBytes};

/// Upper bounds the reader enforces, so that a start_info with absurd counts
/// is rejected before anything iterates over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most modules accepted.
    pub max_modules: u32,
    /// Most memory-map entries accepted.
    pub max_memmap_entries: u32,
    /// Longest command line accepted, including its NUL.
    pub max_cmdline: u32,
}

impl Limits {
    /// The defaults: 4096 modules, 8192 memory-map entries (Xen's own
    /// E820 limit is far lower), 64 KiB command lines (Cloud Hypervisor's
    /// size; Linux's own limit is 2 KiB on x86).
    pub const DEFAULT: Self = Self {
        max_modules: 4096,
        max_memmap_entries: 8192,
        max_cmdline: 64 * 1024,
    };

    /// Accepts at most `max` modules.
    #[must_use]
    pub const fn max_modules(mut self, max: u32) -> Self {
        self.max_modules = max;
        self
    }

    /// Accepts at most `max` memory-map entries.
    #[must_use]
    pub const fn max_memmap_entries(mut self, max: u32) -> Self {
        self.max_memmap_entries = max;
        self
    }

    /// Accepts command lines of at most `max` bytes, including the NUL.
    #[must_use]
    pub const fn max_cmdline(mut self, max: u32) -> Self {
        self.max_cmdline = max;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which string a [`ReadError::Cmdline`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The start_info's own command line.
    Main,
    /// The command line of module N.
    Module(u32),
}

impl core::fmt::Display for Which {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Which::Main => f.write_str("command line"),
            Which::Module(i) => write!(f, "command line of module {i}"),
        }
    }
}

/// Why a start_info is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The start_info itself is not inside memory.
    #[error("start_info at {0:#x} is outside memory")]
    HeaderOutOfRange(u64),
    /// Wrong magic.
    #[error("start_info magic is {0:#010x}, not 0x336ec578")]
    BadMagic(u32),
    /// More modules than [`Limits::max_modules`].
    #[error("start_info claims {count} modules; the limit is {max}")]
    TooManyModules {
        /// `nr_modules`.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// Modules are counted but `modlist_paddr` is 0.
    #[error("start_info has {0} modules but no module list (modlist_paddr = 0)")]
    NoModuleList(u32),
    /// The module list is not inside memory.
    #[error("module list of {count} entries at {paddr:#x} is outside memory")]
    ModuleListOutOfRange {
        /// `modlist_paddr`.
        paddr: u64,
        /// `nr_modules`.
        count: u32,
    },
    /// A module's contents are not inside memory.
    #[error("module {index} ({size:#x} bytes at {paddr:#x}) is outside memory")]
    ModuleOutOfRange {
        /// Module index.
        index: u32,
        /// Its address.
        paddr: u64,
        /// Its size.
        size: u64,
    },
    /// More memory-map entries than [`Limits::max_memmap_entries`].
    #[error("start_info claims {count} memory-map entries; the limit is {max}")]
    TooManyMemmapEntries {
        /// `memmap_entries`.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// Entries are counted but `memmap_paddr` is 0.
    #[error("start_info has {0} memory-map entries but memmap_paddr = 0")]
    NoMemmap(u32),
    /// The memory map is not inside memory.
    #[error("memory map of {count} entries at {paddr:#x} is outside memory")]
    MemmapOutOfRange {
        /// `memmap_paddr`.
        paddr: u64,
        /// `memmap_entries`.
        count: u32,
    },
    /// A command line is unreadable or unterminated.
    #[error("{which} at {paddr:#x}: {problem}")]
    Cmdline {
        /// Which command line.
        which: Which,
        /// Its address.
        paddr: u64,
        /// What is wrong.
        problem: CmdlineProblem,
    },
}

/// What is wrong with a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdlineProblem {
    /// Part of it, before any NUL, is outside memory.
    #[error("runs outside memory before its NUL")]
    OutOfRange,
    /// No NUL within the limit.
    #[error("no NUL within {0} bytes")]
    Unterminated(u32),
}

/// Length (without the NUL) of the C string at `addr`, reading at most `max`
/// bytes (the NUL included).
pub(crate) fn cstr_len<M: PhysRead + ?Sized>(
    mem: &M,
    addr: u64,
    max: u32,
) -> Result<u32, CmdlineProblem> {
    const CHUNK: u32 = 64;
    let mut done = 0u32;
    let mut buf = [0u8; CHUNK as usize];
    while done < max {
        let n = CHUNK.min(max - done);
        let at = addr
            .checked_add(u64::from(done))
            .ok_or(CmdlineProblem::OutOfRange)?;
        let chunk = &mut buf[..n as usize];
        if mem.read(at, chunk).is_err() {
            // The chunk straddles the end of memory: the NUL may still be
            // before it, so look byte by byte.
            for i in 0..n {
                let mut b = [0u8];
                let a = at
                    .checked_add(u64::from(i))
                    .ok_or(CmdlineProblem::OutOfRange)?;
                mem.read(a, &mut b)
                    .map_err(|_| CmdlineProblem::OutOfRange)?;
                if b[0] == 0 {
                    return Ok(done + i);
                }
            }
            return Err(CmdlineProblem::OutOfRange);
        }
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            return Ok(done + i as u32);
        }
        done += n;
    }
    Err(CmdlineProblem::Unterminated(max))
}

/// Checks that `count` entries of `size` bytes at `paddr` are readable.
fn table_in_memory<M: PhysRead + ?Sized>(mem: &M, paddr: u64, count: u32, size: usize) -> bool {
    let Some(len) = u64::from(count).checked_mul(size as u64) else {
        return false;
    };
    range_in_memory(mem, paddr, len)
}

/// Whether `len` bytes at `addr` are readable, probing the first and last
/// byte of every page rather than copying the whole range.
pub(crate) fn range_in_memory<M: PhysRead + ?Sized>(mem: &M, addr: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    let Some(last) = addr.checked_add(len - 1) else {
        return false;
    };
    let mut b = [0u8];
    if mem.read(addr, &mut b).is_err() || mem.read(last, &mut b).is_err() {
        return false;
    }
    // Memory may have holes: probe each 4 KiB page in between too, but a
    // bounded number of times so that a huge module costs nothing absurd
    // (a module larger than 4 GiB is checked at its ends and every 1 MiB).
    let step: u64 = if len > (1 << 32) { 1 << 20 } else { 4096 };
    let mut at = (addr | (step - 1)).saturating_add(1);
    while at < last {
        if mem.read(at, &mut b).is_err() {
            return false;
        }
        at = at.saturating_add(step);
    }
    true
}

/// A module as the start_info describes it, with its command line's length
/// already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    /// Index in the module list.
    pub index: u32,
    /// The raw list entry.
    pub entry: ModlistEntry,
    /// Length of the command line without its NUL, `None` if absent.
    pub cmdline_len: Option<u32>,
}

/// A validated start_info in memory `M`.
#[derive(Debug, Clone, Copy)]
pub struct StartInfoView<'m, M: ?Sized> {
    mem: &'m M,
    addr: u64,
    header: StartInfo,
    cmdline_len: Option<u32>,
}

impl<'m, M: PhysRead + ?Sized> StartInfoView<'m, M> {
    /// Reads and validates the start_info at `addr` with [`Limits::DEFAULT`].
    pub fn read(mem: &'m M, addr: u64) -> Result<Self, ReadError> {
        Self::read_with_limits(mem, addr, &Limits::DEFAULT)
    }

    /// Reads and validates the start_info at `addr`.
    pub fn read_with_limits(mem: &'m M, addr: u64, limits: &Limits) -> Result<Self, ReadError> {
        // Version 0 is 48 bytes: read those first, the rest only if the
        // version says it exists (it may be the last bytes of memory).
        let mut header = StartInfo::new_zeroed();
        let v0 = &mut header.as_mut_bytes()[..START_INFO_V0_SIZE];
        mem.read(addr, v0)
            .map_err(|_| ReadError::HeaderOutOfRange(addr))?;
        if header.magic != START_INFO_MAGIC {
            return Err(ReadError::BadMagic(header.magic));
        }
        if header.version >= 1 {
            header =
                read_obj(mem, addr).map_err(|_: OutOfRange| ReadError::HeaderOutOfRange(addr))?;
        }

        let count = header.nr_modules;
        if count > limits.max_modules {
            return Err(ReadError::TooManyModules {
                count,
                max: limits.max_modules,
            });
        }
        if count > 0 {
            let paddr = header.modlist_paddr;
            if paddr == 0 {
                return Err(ReadError::NoModuleList(count));
            }
            if !table_in_memory(mem, paddr, count, size_of::<ModlistEntry>()) {
                return Err(ReadError::ModuleListOutOfRange { paddr, count });
            }
        }
        if header.version >= 1 {
            let count = header.memmap_entries;
            if count > limits.max_memmap_entries {
                return Err(ReadError::TooManyMemmapEntries {
                    count,
                    max: limits.max_memmap_entries,
                });
            }
            let paddr = header.memmap_paddr;
            if count > 0 && paddr == 0 {
                return Err(ReadError::NoMemmap(count));
            }
            if !table_in_memory(mem, paddr, count, size_of::<MemmapEntry>()) {
                return Err(ReadError::MemmapOutOfRange { paddr, count });
            }
        }
        let cmdline_len =
            checked_cmdline(mem, header.cmdline_paddr, Which::Main, limits.max_cmdline)?;
        let view = Self {
            mem,
            addr,
            header,
            cmdline_len,
        };
        for index in 0..count {
            view.load_module(index, limits.max_cmdline)?;
        }
        Ok(view)
    }

    fn load_module(&self, index: u32, max_cmdline: u32) -> Result<Module, ReadError> {
        let entry_addr =
            self.header.modlist_paddr + u64::from(index) * size_of::<ModlistEntry>() as u64;
        let count = self.header.nr_modules;
        let paddr = self.header.modlist_paddr;
        let entry: ModlistEntry = read_obj(self.mem, entry_addr)
            .map_err(|_| ReadError::ModuleListOutOfRange { paddr, count })?;
        if !range_in_memory(self.mem, entry.paddr, entry.size) {
            return Err(ReadError::ModuleOutOfRange {
                index,
                paddr: entry.paddr,
                size: entry.size,
            });
        }
        let cmdline_len = checked_cmdline(
            self.mem,
            entry.cmdline_paddr,
            Which::Module(index),
            max_cmdline,
        )?;
        Ok(Module {
            index,
            entry,
            cmdline_len,
        })
    }

    /// The memory it was read from.
    pub fn memory(&self) -> &'m M {
        self.mem
    }

    /// Its physical address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The raw header. For version 0 the version-1 fields read as zero.
    pub fn header(&self) -> &StartInfo {
        &self.header
    }

    /// The version as found (0, 1, or a later, compatible one).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The flags, unknown bits kept.
    pub fn flags(&self) -> SifFlags {
        self.header.sif_flags()
    }

    /// The RSDP address, if any.
    pub fn rsdp_paddr(&self) -> Option<u64> {
        Some(self.header.rsdp_paddr).filter(|&a| a != 0)
    }

    /// Address and length (without NUL) of the command line, if any.
    pub fn cmdline(&self) -> Option<(u64, u32)> {
        self.cmdline_len.map(|len| (self.header.cmdline_paddr, len))
    }

    /// Copies the command line (without NUL) into `buf` and returns the
    /// copied part; `None` if there is no command line. A `buf` shorter than
    /// the command line gets its prefix.
    pub fn read_cmdline<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let (addr, len) = self.cmdline()?;
        read_string(self.mem, addr, len, buf)
    }

    /// Number of modules.
    pub fn module_count(&self) -> u32 {
        self.header.nr_modules
    }

    /// Module `index`, or `None` past the end.
    pub fn module(&self, index: u32) -> Option<Module> {
        if index >= self.module_count() {
            return None;
        }
        // Validated by `read_with_limits`; a failure now means the memory
        // changed underneath, which is reported as an absent module.
        self.load_module(index, u32::MAX).ok()
    }

    /// All modules in order.
    pub fn modules(&self) -> impl Iterator<Item = Module> + '_ {
        (0..self.module_count()).filter_map(|i| self.module(i))
    }

    /// Copies the command line of `module` into `buf` (see
    /// [`Self::read_cmdline`]).
    pub fn read_module_cmdline<'b>(&self, module: &Module, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        read_string(
            self.mem,
            module.entry.cmdline_paddr,
            module.cmdline_len?,
            buf,
        )
    }

    /// Number of memory-map entries carried (0 for version 0, or when the
    /// start_info says "no map here").
    pub fn memmap_len(&self) -> u32 {
        if self.header.version >= 1 {
            self.header.memmap_entries
        } else {
            0
        }
    }

    /// Memory-map entry `index`.
    pub fn memmap_entry(&self, index: u32) -> Option<MemmapEntry> {
        if index >= self.memmap_len() {
            return None;
        }
        let addr = self.header.memmap_paddr + u64::from(index) * size_of::<MemmapEntry>() as u64;
        read_obj(self.mem, addr).ok()
    }

    /// The memory map, empty if not carried.
    pub fn memmap(&self) -> impl Iterator<Item = MemmapEntry> + '_ {
        (0..self.memmap_len()).filter_map(|i| self.memmap_entry(i))
    }
}

fn checked_cmdline<M: PhysRead + ?Sized>(
    mem: &M,
    paddr: u64,
    which: Which,
    max: u32,
) -> Result<Option<u32>, ReadError> {
    if paddr == 0 {
        return Ok(None);
    }
    cstr_len(mem, paddr, max)
        .map(Some)
        .map_err(|problem| ReadError::Cmdline {
            which,
            paddr,
            problem,
        })
}

fn read_string<'b, M: PhysRead + ?Sized>(
    mem: &M,
    addr: u64,
    len: u32,
    buf: &'b mut [u8],
) -> Option<&'b [u8]> {
    let n = buf.len().min(len as usize);
    let out = &mut buf[..n];
    mem.read(addr, out).ok()?;
    Some(out)
}

#[cfg(feature = "alloc")]
mod owned {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// An owned copy of a start_info and everything it points to except the
    /// module contents (which stay where they are).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OwnedStartInfo {
        /// Where it was read from.
        pub addr: u64,
        /// Version.
        pub version: u32,
        /// Flags.
        pub flags: SifFlags,
        /// Command line without its NUL.
        pub cmdline: Option<Vec<u8>>,
        /// RSDP address, 0 if none.
        pub rsdp_paddr: u64,
        /// Modules.
        pub modules: Vec<OwnedModule>,
        /// The memory map, `None` if not carried (version 0 or 0 entries).
        pub memmap: Option<Vec<MemmapEntry>>,
    }

    /// An owned module description.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OwnedModule {
        /// Address of the contents.
        pub paddr: u64,
        /// Size of the contents.
        pub size: u64,
        /// Command line without its NUL.
        pub cmdline: Option<Vec<u8>>,
    }

    fn string<M: PhysRead + ?Sized>(mem: &M, addr: u64, len: Option<u32>) -> Option<Vec<u8>> {
        let len = len?;
        let mut v = vec![0u8; len as usize];
        mem.read(addr, &mut v).ok()?;
        Some(v)
    }

    impl<M: PhysRead + ?Sized> StartInfoView<'_, M> {
        /// Copies everything out.
        pub fn to_owned(&self) -> OwnedStartInfo {
            let modules = self
                .modules()
                .map(|m| OwnedModule {
                    paddr: m.entry.paddr,
                    size: m.entry.size,
                    cmdline: string(self.mem, m.entry.cmdline_paddr, m.cmdline_len),
                })
                .collect();
            let memmap = (self.memmap_len() > 0).then(|| self.memmap().collect());
            OwnedStartInfo {
                addr: self.addr,
                version: self.version(),
                flags: self.flags(),
                cmdline: string(self.mem, self.header.cmdline_paddr, self.cmdline_len),
                rsdp_paddr: self.header.rsdp_paddr,
                modules,
                memmap,
            }
        }
    }
}

#[cfg(feature = "alloc")]
pub use owned::{OwnedModule, OwnedStartInfo};
