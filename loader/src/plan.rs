//! The boot plan: what goes where in guest memory, decided before a byte
//! is written.

use crate::cpu::EntryMode;
use core::fmt;
use pvh_entry::{MemmapEntry, SifFlags, SubarchPolicy};

/// The entry protocol to boot with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootProtocol {
    /// PVH: a PVH ELF (PHYS32_ENTRY note) directly, or — with
    /// [`BootConfig::stub`] — a bzImage through the guest stub (the stub is
    /// the PVH ELF; the bzImage becomes module 0, the caller's modules
    /// follow).
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

/// A boot module (module 0 is the initrd by convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// Everything the loader needs to know about the guest to boot.
#[derive(Debug, Clone, Default)]
pub struct BootConfig<'a> {
    /// The kernel image (PVH ELF or bzImage).
    pub kernel: &'a [u8],
    /// Entry protocol.
    pub protocol: BootProtocol,
    /// The guest stub ELF (PVH) for booting a bzImage with
    /// [`BootProtocol::Pvh`].
    pub stub: Option<&'a [u8]>,
    /// Kernel command line, without NUL.
    pub cmdline: &'a [u8],
    /// Modules, in order.
    pub modules: Vec<Module<'a>>,
    /// `hardware_subarch` policy for the zero page (Linux64).
    pub subarch: SubarchPolicy,
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
    /// Where a PVH ELF goes.
    pub relocation: Relocation,
    /// Extra start_info flags.
    pub flags: SifFlags,
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
