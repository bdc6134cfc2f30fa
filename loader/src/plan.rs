//! The boot plan: what goes where in guest memory, decided before a byte
//! is written.

use crate::cpu::EntryMode;
use core::fmt;
use pvh_entry::{MemmapEntry, SifFlags, SubarchPolicy};

/// The entry protocol to boot with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootProtocol {
    /// PVH: a PVH ELF (PHYS32_ENTRY note) directly ([`Kernel::PvhElf`]),
    /// or a bzImage through the guest stub ([`Kernel::Stub`]).
    #[default]
    Pvh,
    /// The Linux 64-bit boot protocol on a bzImage: zero page, identity
    /// page tables, long mode.
    Linux64,
    /// Xen-style: decompress the bzImage's payload to its vmlinux ELF and
    /// boot that through PVH.
    PvhUnpack,
}

impl BootProtocol {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pvh => "pvh",
            Self::Linux64 => "linux64",
            Self::PvhUnpack => "pvh-unpack",
        }
    }
}

/// Where a PVH ELF kernel goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Relocation {
    /// At its physical addresses; elsewhere (per PHYS32_RELOC) only if that
    /// range is not free RAM.
    #[default]
    Preferred,
    /// Elsewhere per PHYS32_RELOC even if the preferred range is free: the
    /// lowest aligned address at or above the note's minimum (and 1 MiB)
    /// where the whole image fits below its maximum and 4 GiB.
    Anywhere,
    /// With its lowest segment at this address (must satisfy PHYS32_RELOC).
    At(u64),
}

/// A boot module (module 0 is the initrd by convention). Built with
/// [`Module::new`] and its setters (`Module::new(&initrd).headroom(n)`);
/// the fields stay readable and assignable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Module<'a> {
    /// Contents.
    pub bytes: &'a [u8],
    /// Command line, without NUL.
    pub cmdline: Option<&'a [u8]>,
    /// Allow placement above 4 GiB (default: below).
    pub above_4g: bool,
    /// Bytes kept free right after the module (a [`Purpose::Headroom`]
    /// placement), so the guest can decompress it in place: it moves the
    /// compressed bytes to the end of the room and decompresses to the
    /// module's start. start_info still lists only the module itself.
    pub headroom: u64,
}

/// The kernel and the path it boots by: one variant per boot path, each
/// holding only what that path uses, so a setting that means nothing for a
/// path (a stub for a PVH ELF, a relocation for the Linux 64-bit protocol,
/// a subarch for a direct PVH boot) cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel<'a> {
    /// A PVH ELF (`PHYS32_ENTRY` note), entered directly in 32-bit
    /// protected mode with EBX at the start_info.
    PvhElf {
        /// The ELF.
        image: &'a [u8],
        /// Where it goes.
        relocation: Relocation,
    },
    /// A bzImage through the Linux 64-bit boot protocol: zero page,
    /// identity page tables, long mode.
    Linux64 {
        /// The bzImage.
        bzimage: &'a [u8],
        /// `hardware_subarch` policy for the zero page.
        subarch: SubarchPolicy,
    },
    /// A bzImage through the PVH stub guest: the stub (a PVH ELF, the
    /// caller's bytes) is entered; the bzImage becomes module 0, the
    /// caller's modules follow, and the stub builds the zero page.
    Stub {
        /// The bzImage.
        bzimage: &'a [u8],
        /// The stub guest ELF.
        stub: &'a [u8],
        /// Where the stub goes.
        relocation: Relocation,
        /// The `hardware_subarch` policy the stub applies (passed as the
        /// bzImage module's command line).
        subarch: SubarchPolicy,
    },
    /// Xen-style: the bzImage's payload decompressed to its vmlinux ELF,
    /// booted as a PVH ELF.
    PvhUnpack {
        /// The bzImage.
        bzimage: &'a [u8],
        /// Where the unpacked vmlinux goes.
        relocation: Relocation,
    },
}

impl Default for Kernel<'_> {
    /// An empty PVH ELF (planning it fails: a placeholder for `..Default`).
    fn default() -> Self {
        Self::PvhElf {
            image: &[],
            relocation: Relocation::Preferred,
        }
    }
}

impl<'a> Kernel<'a> {
    /// A PVH ELF at its preferred addresses.
    pub fn pvh_elf(image: &'a [u8]) -> Self {
        Self::PvhElf {
            image,
            relocation: Relocation::Preferred,
        }
    }

    /// A bzImage through the Linux 64-bit protocol, PC subarch.
    pub fn linux64(bzimage: &'a [u8]) -> Self {
        Self::Linux64 {
            bzimage,
            subarch: SubarchPolicy::Pc,
        }
    }

    /// A bzImage through the stub guest `stub`, PC subarch.
    pub fn stub(bzimage: &'a [u8], stub: &'a [u8]) -> Self {
        Self::Stub {
            bzimage,
            stub,
            relocation: Relocation::Preferred,
            subarch: SubarchPolicy::Pc,
        }
    }

    /// A bzImage unpacked to its vmlinux and booted as PVH.
    pub fn pvh_unpack(bzimage: &'a [u8]) -> Self {
        Self::PvhUnpack {
            bzimage,
            relocation: Relocation::Preferred,
        }
    }

    /// The path `protocol` names, for callers that choose it at run time
    /// (a command line, a device tree): [`BootProtocol::Pvh`] with a stub
    /// is the stub path, without one a PVH ELF; `stub` is not used by the
    /// other protocols.
    pub fn from_protocol(protocol: BootProtocol, image: &'a [u8], stub: Option<&'a [u8]>) -> Self {
        match (protocol, stub) {
            (BootProtocol::Pvh, Some(stub)) => Self::stub(image, stub),
            (BootProtocol::Pvh, None) => Self::pvh_elf(image),
            (BootProtocol::Linux64, _) => Self::linux64(image),
            (BootProtocol::PvhUnpack, _) => Self::pvh_unpack(image),
        }
    }

    /// `self` with `relocation` on the paths that place a PVH ELF (not
    /// [`Kernel::Linux64`], whose kernel the Linux boot policy places).
    #[must_use]
    pub fn with_relocation(mut self, relocation: Relocation) -> Self {
        match &mut self {
            Self::PvhElf { relocation: r, .. }
            | Self::Stub { relocation: r, .. }
            | Self::PvhUnpack { relocation: r, .. } => *r = relocation,
            Self::Linux64 { .. } => {}
        }
        self
    }

    /// `self` with `subarch` on the paths that build a zero page
    /// ([`Kernel::Linux64`], [`Kernel::Stub`]).
    #[must_use]
    pub fn with_subarch(mut self, subarch: SubarchPolicy) -> Self {
        match &mut self {
            Self::Linux64 { subarch: s, .. } | Self::Stub { subarch: s, .. } => *s = subarch,
            Self::PvhElf { .. } | Self::PvhUnpack { .. } => {}
        }
        self
    }

    /// The kernel image: the PVH ELF or the bzImage.
    pub fn image(&self) -> &'a [u8] {
        match *self {
            Self::PvhElf { image, .. } => image,
            Self::Linux64 { bzimage, .. }
            | Self::Stub { bzimage, .. }
            | Self::PvhUnpack { bzimage, .. } => bzimage,
        }
    }

    /// The entry protocol of the path.
    pub fn protocol(&self) -> BootProtocol {
        match self {
            Self::PvhElf { .. } | Self::Stub { .. } => BootProtocol::Pvh,
            Self::Linux64 { .. } => BootProtocol::Linux64,
            Self::PvhUnpack { .. } => BootProtocol::PvhUnpack,
        }
    }

    /// The stub guest, on the stub path.
    pub fn stub_image(&self) -> Option<&'a [u8]> {
        match *self {
            Self::Stub { stub, .. } => Some(stub),
            _ => None,
        }
    }

    /// Where the PVH ELF (the kernel, the stub or the unpacked vmlinux)
    /// goes; `Preferred` on the Linux 64-bit path (its own policy places
    /// the kernel).
    pub fn relocation(&self) -> Relocation {
        match *self {
            Self::PvhElf { relocation, .. }
            | Self::Stub { relocation, .. }
            | Self::PvhUnpack { relocation, .. } => relocation,
            Self::Linux64 { .. } => Relocation::Preferred,
        }
    }

    /// The `hardware_subarch` policy (Linux64 and stub paths; PC elsewhere,
    /// where no zero page is built).
    pub fn subarch(&self) -> SubarchPolicy {
        match *self {
            Self::Linux64 { subarch, .. } | Self::Stub { subarch, .. } => subarch,
            _ => SubarchPolicy::Pc,
        }
    }
}

/// Everything the loader needs to know about the guest to boot. Built with
/// [`BootConfig::new`] and its setters
/// (`BootConfig::new(Kernel::pvh_elf(&elf)).cmdline(b"console=ttyS0")`);
/// the fields stay readable and assignable.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BootConfig<'a> {
    /// The kernel and its boot path.
    pub kernel: Kernel<'a>,
    /// Kernel command line, without NUL.
    pub cmdline: &'a [u8],
    /// Modules, in order.
    pub modules: Vec<Module<'a>>,
    /// ACPI RSDP address, if the caller put tables somewhere itself.
    /// Ignored when [`BootConfig::acpi`] is set (the RSDP is then at the
    /// start of the planned region).
    pub rsdp: Option<u64>,
    /// Reserve an ACPI region of this many bytes (rounded up to 4 KiB, at
    /// most the size of [`crate::layout::ACPI_REGION`]) for the caller's
    /// tables, RSDP first: the plan places it at the start of
    /// `ACPI_REGION` (RESERVED in the memory map), exposes it as
    /// [`BootPlan::acpi`], and start_info's `rsdp_paddr` points at it.
    pub acpi: Option<u64>,
    /// Reserve a region of this many bytes (rounded up to 4 KiB) at
    /// [`crate::layout::MP_TABLE_ADDR`] for the caller's MP table
    /// (floating pointer first; RESERVED in the memory map, where guests
    /// scan for it), exposed as [`BootPlan::mp_table`].
    pub mp_table: Option<u64>,
    /// Extra start_info flags.
    pub flags: SifFlags,
}

impl<'a> BootConfig<'a> {
    /// A configuration booting `kernel`, with no command line, module or
    /// ACPI region.
    pub fn new(kernel: Kernel<'a>) -> Self {
        Self {
            kernel,
            ..Self::default()
        }
    }

    /// Boots `kernel` instead.
    #[must_use]
    pub fn kernel(mut self, kernel: Kernel<'a>) -> Self {
        self.kernel = kernel;
        self
    }

    /// The kernel command line (no NUL).
    #[must_use]
    pub fn cmdline(mut self, cmdline: &'a [u8]) -> Self {
        self.cmdline = cmdline;
        self
    }

    /// The modules, in order.
    #[must_use]
    pub fn modules(mut self, modules: Vec<Module<'a>>) -> Self {
        self.modules = modules;
        self
    }

    /// Appends a module.
    #[must_use]
    pub fn module(mut self, module: Module<'a>) -> Self {
        self.modules.push(module);
        self
    }

    /// The caller's own RSDP address ([`BootConfig::rsdp`]).
    #[must_use]
    pub fn rsdp(mut self, rsdp: Option<u64>) -> Self {
        self.rsdp = rsdp;
        self
    }

    /// An ACPI region of this many bytes ([`BootConfig::acpi`]).
    #[must_use]
    pub fn acpi(mut self, acpi: Option<u64>) -> Self {
        self.acpi = acpi;
        self
    }

    /// An MP table region of this many bytes ([`BootConfig::mp_table`]).
    #[must_use]
    pub fn mp_table(mut self, mp_table: Option<u64>) -> Self {
        self.mp_table = mp_table;
        self
    }

    /// Extra start_info flags.
    #[must_use]
    pub fn flags(mut self, flags: SifFlags) -> Self {
        self.flags = flags;
        self
    }
}

impl<'a> Module<'a> {
    /// A module holding `bytes`: no command line, below 4 GiB, no headroom.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            ..Self::default()
        }
    }

    /// Holds `bytes` instead.
    #[must_use]
    pub fn bytes(mut self, bytes: &'a [u8]) -> Self {
        self.bytes = bytes;
        self
    }

    /// Its command line (no NUL).
    #[must_use]
    pub fn cmdline(mut self, cmdline: Option<&'a [u8]>) -> Self {
        self.cmdline = cmdline;
        self
    }

    /// Whether it may go above 4 GiB.
    #[must_use]
    pub fn above_4g(mut self, above_4g: bool) -> Self {
        self.above_4g = above_4g;
        self
    }

    /// Bytes kept free after it ([`Module::headroom`]).
    #[must_use]
    pub fn headroom(mut self, headroom: u64) -> Self {
        self.headroom = headroom;
        self
    }
}

/// What a placement holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The boot GDT.
    Gdt,
    /// The empty boot IDT.
    Idt,
    /// PT_LOAD segment N of the PVH ELF (kernel, unpacked vmlinux or stub).
    Segment(usize),
    /// The bzImage's protected-mode kernel, with room for `init_size`.
    Kernel,
    /// Module N's contents.
    Module(usize),
    /// The room kept free after module N ([`Module::headroom`]).
    Headroom(usize),
    /// The start_info block (header, module list, memory map, strings).
    StartInfo,
    /// The Linux zero page.
    ZeroPage,
    /// The identity-map page tables (Linux64).
    PageTables,
    /// The boot stack (Linux64).
    Stack,
    /// The VMM's reserved range N ([`crate::GuestRam::reserved`]).
    Reserved(usize),
    /// The ACPI tables (RSDP first), written by the caller.
    Acpi,
    /// The MP table (floating pointer first), written by the caller.
    MpTable,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gdt => f.write_str("GDT"),
            Self::Idt => f.write_str("IDT"),
            Self::Segment(i) => write!(f, "ELF segment {i}"),
            Self::Kernel => f.write_str("kernel"),
            Self::Module(i) => write!(f, "module {i}"),
            Self::Headroom(i) => write!(f, "module {i} headroom"),
            Self::StartInfo => f.write_str("start_info block"),
            Self::ZeroPage => f.write_str("zero page"),
            Self::PageTables => f.write_str("page tables"),
            Self::Stack => f.write_str("boot stack"),
            Self::Reserved(i) => write!(f, "reserved range {i}"),
            Self::Acpi => f.write_str("ACPI tables"),
            Self::MpTable => f.write_str("MP table"),
        }
    }
}

/// One range of guest memory and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// What.
    pub purpose: Purpose,
    /// Guest-physical start.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

impl Placement {
    /// `start..start + len` (planned placements never wrap).
    pub fn range(&self) -> core::ops::Range<u64> {
        self.start..self.start.saturating_add(self.len)
    }
}

/// The complete plan: every placement, the memory map, the entry state
/// inputs. Made by [`crate::plan()`], carried out by [`crate::load()`].
///
/// A plan is read-only and borrows the inputs it was made from (the
/// kernel, stub, command line and module bytes of its [`BootConfig`]):
/// `load` takes the plan alone, so it cannot be handed inputs that differ
/// from the ones planned, and no field can be changed between the two.
#[derive(Debug, Clone)]
pub struct BootPlan<'a> {
    pub(crate) config: BootConfig<'a>,
    pub(crate) mode: EntryMode,
    pub(crate) entry: u64,
    pub(crate) start_info: u64,
    pub(crate) zero_page: Option<u64>,
    pub(crate) page_tables: Option<u64>,
    pub(crate) relocation_delta: i64,
    pub(crate) placements: Vec<Placement>,
    pub(crate) memmap: Vec<MemmapEntry>,
    pub(crate) acpi: Option<core::ops::Range<u64>>,
    pub(crate) rsdp: Option<u64>,
    pub(crate) mp_table: Option<core::ops::Range<u64>>,
    pub(crate) detail: crate::planner::Detail,
}

impl<'a> BootPlan<'a> {
    /// The inputs the plan was made from (and [`crate::load()`] writes).
    pub fn config(&self) -> &BootConfig<'a> {
        &self.config
    }

    /// The guest RAM the plan was made for.
    pub fn ram(&self) -> &crate::GuestRam {
        &self.detail.ram
    }

    /// Entry protocol of the vCPU.
    pub fn mode(&self) -> EntryMode {
        self.mode
    }

    /// Entry point (after relocation).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The start_info address.
    pub fn start_info(&self) -> u64 {
        self.start_info
    }

    /// The zero page (Linux64).
    pub fn zero_page(&self) -> Option<u64> {
        self.zero_page
    }

    /// The page-table root (Linux64).
    pub fn page_tables(&self) -> Option<u64> {
        self.page_tables
    }

    /// How far the PVH ELF was moved from its physical addresses.
    pub fn relocation_delta(&self) -> i64 {
        self.relocation_delta
    }

    /// Every placement, sorted by address; no two overlap.
    pub fn placements(&self) -> &[Placement] {
        &self.placements
    }

    /// The memory map start_info carries.
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap
    }

    /// The ACPI region the caller fills ([`BootConfig::acpi`]), if any.
    pub fn acpi(&self) -> Option<core::ops::Range<u64>> {
        self.acpi.clone()
    }

    /// The MP table region the caller fills ([`BootConfig::mp_table`]), if
    /// any.
    pub fn mp_table(&self) -> Option<core::ops::Range<u64>> {
        self.mp_table.clone()
    }

    /// start_info's `rsdp_paddr`: the ACPI region's start, else
    /// [`BootConfig::rsdp`].
    pub fn rsdp(&self) -> Option<u64> {
        self.rsdp
    }

    /// The placement for `purpose`, if any.
    pub fn find(&self, purpose: Purpose) -> Option<&Placement> {
        self.placements.iter().find(|p| p.purpose == purpose)
    }

    /// The VMM's reserved ranges the plan kept free
    /// ([`crate::GuestRamBuilder::reserve`]), ascending.
    pub fn reserved(&self) -> &[crate::Reservation] {
        self.detail.ram.reserved()
    }
}

impl fmt::Display for BootPlan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "entry {:#x} ({:?}), start_info {:#x}",
            self.entry, self.mode, self.start_info
        )?;
        if let Some(rsdp) = self.rsdp {
            writeln!(f, "rsdp {rsdp:#x}")?;
        }
        if self.relocation_delta != 0 {
            writeln!(f, "kernel relocated by {:+#x}", self.relocation_delta)?;
        }
        for p in &self.placements {
            let reserved = match p.purpose {
                Purpose::Reserved(i) => self.reserved().get(i).map(|r| r.name),
                _ => None,
            };
            write!(
                f,
                "  {:#014x}..{:#014x} {:>10} ",
                p.start,
                p.start.saturating_add(p.len),
                human(p.len),
            )?;
            match reserved {
                Some(name) => writeln!(f, "{name}")?,
                None => writeln!(f, "{}", p.purpose)?,
            }
        }
        writeln!(f, "memory map:")?;
        for e in &self.memmap {
            writeln!(
                f,
                "  {:#014x}..{:#014x} {:>10} type {}",
                e.addr,
                e.addr.saturating_add(e.size),
                human(e.size),
                e.type_.0
            )?;
        }
        Ok(())
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
