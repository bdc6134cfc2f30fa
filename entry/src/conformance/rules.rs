//! The rules and their checks. [`RULES`] is the order findings come in.

use super::cpu::{
    BSS_ALL_ZERO, CR0_BITS, CR0_ET, CR0_PE, EFLAGS_IF, EFLAGS_TF, EFLAGS_VM, ES_CANARY, EntryState,
    SS_CANARY, SegReg, flat32_problem, tss_problem,
};
use super::{Finding, Level, MAX_MAP_ENTRIES, MAX_MODULES, Note, Outcome, Rule, Subject};
use crate::acpi::{self, Reached, rsdp};
use crate::memory::{PhysRead, read_obj};
use crate::reader::{Limits, cstr_len};
use crate::start_info::{
    MemmapEntry, MemmapType, ModlistEntry, START_INFO_MAGIC, START_INFO_V0_SIZE, SifFlags,
    StartInfo,
};
use core::fmt::{self, Write};
use core::mem::size_of;
use zerocopy::{FromZeros, IntoBytes};

const PVH: &str = "xen docs/misc/pvh.pandoc";
const START_INFO_H: &str = "xen public/arch-x86/hvm/start_info.h";
const XEN_H: &str = "xen public/xen.h (SIF_*)";
const ELF: &str = "ELF gABI, program header (p_filesz < p_memsz)";
const ACPI_RSDP: &str = "ACPI 6.5 5.2.5 (RSDP)";
const ACPI_SDT: &str = "ACPI 6.5 5.2.6-5.2.9 (table header, XSDT/RSDT, FADT)";
const ACPI_MAP: &str = "ACPI 6.5 15 (system address map)";
const INTEROP: &str = "interoperability";

macro_rules! rules {
    ($($name:ident = ($id:literal, $level:ident, $source:expr, $req:literal);)*) => {
        $(
            #[doc = $req]
            const $name: Rule = Rule {
                id: $id,
                level: Level::$level,
                source: $source,
                requirement: $req,
            };
        )*
        /// Every rule, in the order [`check`](super::check) reports them.
        pub static RULES: &[Rule] = &[$($name),*];
    };
}

rules! {
    ENTRY_POINT = ("entry.entry_point", Must, PVH,
        "execution starts at the XEN_ELFNOTE_PHYS32_ENTRY address, with CS based at 0");
    ENTRY_CR0 = ("entry.cr0", Must, PVH,
        "CR0: PE set, every other writable bit clear (ET is read-only)");
    ENTRY_CR4 = ("entry.cr4", Must, PVH, "CR4: all bits clear");
    ENTRY_EFLAGS = ("entry.eflags", Must, PVH, "EFLAGS: VM, IF and TF clear");
    ENTRY_EFER = ("entry.efer", Should, INTEROP,
        "EFER zero: pvh.pandoc leaves it unspecified, but a 32-bit guest that enables paging with LME left set faults");
    ENTRY_CS = ("entry.cs", Must, PVH,
        "CS: 32-bit read/execute code segment, base 0, limit 0xffffffff");
    ENTRY_DS = ("entry.ds", Must, PVH,
        "DS: 32-bit read/write data segment, base 0, limit 0xffffffff");
    ENTRY_ES = ("entry.es", Must, PVH,
        "ES: 32-bit read/write data segment, base 0, limit 0xffffffff");
    ENTRY_SS = ("entry.ss", Should, INTEROP,
        "SS like DS: pvh.pandoc names only DS and ES, every implementation sets SS too");
    ENTRY_TR = ("entry.tr", Must, PVH,
        "TR: an active (busy) 32-bit TSS, base 0, limit 0x67");
    ELF_BSS = ("elf.bss_zeroed", Must, ELF,
        "the bytes past p_filesz up to p_memsz of each loaded segment are zero");
    SI_MAGIC = ("start_info.magic", Must, START_INFO_H,
        "EBX points at a start_info whose magic is 0x336ec578");
    SI_VERSION = ("start_info.version", Must, START_INFO_H,
        "the version is one start_info.h defines (0 or 1)");
    SI_FLAGS = ("start_info.flags", Must, XEN_H, "flags holds only SIF_* bits");
    SI_RESERVED = ("start_info.reserved", Must, START_INFO_H,
        "the version-1 reserved field is zero");
    SI_ADDRESSES = ("start_info.addresses", Must, START_INFO_H,
        "nothing is at physical address 0: every counted table has an address, no module starts at 0");
    MOD_RESERVED = ("modules.reserved", Should, START_INFO_H,
        "each module entry's reserved field is zero (the header gives it no rule)");
    MOD_ALIGNED = ("modules.page_aligned", Should, INTEROP,
        "modules start on a 4 KiB boundary: guests map and free them by page (Multiboot's rule)");
    MAP_PRESENT = ("memmap.present", Should, INTEROP,
        "the start_info carries a memory map (version 1, memmap_entries > 0): off Xen nothing else tells a guest its RAM");
    MAP_RESERVED = ("memmap.reserved", Must, START_INFO_H,
        "each memory-map entry's reserved field is zero");
    MAP_TYPES = ("memmap.types", Should, START_INFO_H,
        "entry types are XEN_HVM_MEMMAP_TYPE_* values (1 to 7)");
    MAP_SORTED = ("memmap.sorted", Should, INTEROP, "entries are in ascending address order");
    MAP_DISJOINT = ("memmap.disjoint", Should, INTEROP, "no two entries overlap");
    MAP_NO_EMPTY = ("memmap.no_empty", Should, INTEROP, "no entry has size 0");
    STR_TERMINATED = ("strings.terminated", Must, START_INFO_H,
        "every command line is NUL-terminated inside readable memory, within 64 KiB");
    STR_ASCII = ("strings.ascii", Must, START_INFO_H, "every command line is ASCII");
    LAYOUT_DISJOINT = ("layout.disjoint", Must, START_INFO_H,
        "start_info, module list, memory map, command lines, modules and RSDP do not overlap each other");
    LAYOUT_IMAGE = ("layout.image", Must, PVH,
        "none of them overlaps the loaded guest image");
    LAYOUT_IN_RAM = ("layout.in_ram", Should, INTEROP,
        "each of them (the RSDP aside) lies in RAM the memory map describes");
    LAYOUT_BELOW_4G = ("layout.below_4g", Should, START_INFO_H,
        "each of them ends below 4 GiB, where a guest entered with paging off can read it");
    LAYOUT_ALIGNED = ("layout.aligned", Should, INTEROP,
        "start_info, module list and memory map are 8-byte aligned (their 64-bit fields)");
    RSDP_PASSED = ("rsdp.passed", Should, PVH,
        "rsdp_paddr names the RSDP whenever there are ACPI tables");
    RSDP_VALID = ("rsdp.valid", Must, ACPI_RSDP,
        "rsdp_paddr points at an RSDP with its signature, a defined revision (0 or >= 2), length and checksums");
    ACPI_TABLES = ("acpi.tables", Must, ACPI_SDT,
        "the root table, every table it lists and the FADT's DSDT have valid lengths and checksums");
    ACPI_IN_MAP = ("acpi.in_map", Should, ACPI_MAP,
        "the RSDP and every table lie in reserved, ACPI or NVS ranges of the memory map");
}

/// Formats and hands on one finding.
struct Out<'o> {
    out: &'o mut dyn FnMut(&Finding),
}

impl Out<'_> {
    fn emit(&mut self, rule: &'static Rule, outcome: Outcome, note: fmt::Arguments<'_>) {
        let mut n = Note::new();
        let _ = n.write_fmt(note);
        (self.out)(&Finding {
            rule,
            outcome,
            note: n,
        });
    }

    fn pass(&mut self, rule: &'static Rule, note: fmt::Arguments<'_>) {
        self.emit(rule, Outcome::Pass, note)
    }

    fn fail(&mut self, rule: &'static Rule, note: fmt::Arguments<'_>) {
        self.emit(rule, Outcome::Fail, note)
    }

    fn na(&mut self, rule: &'static Rule, note: fmt::Arguments<'_>) {
        self.emit(rule, Outcome::NotApplicable, note)
    }
}

pub(super) fn check<M: PhysRead + ?Sized>(s: &Subject<'_, M>, out: &mut dyn FnMut(&Finding)) {
    let mut o = Out { out };
    entry_rules(s.entry, &mut o);
    let header = Header::read(s.mem, s.start_info);
    match &header {
        Header::Unreadable => o.fail(
            &SI_MAGIC,
            format_args!("start_info at {:#x} is not readable", s.start_info),
        ),
        Header::BadMagic(m) => o.fail(&SI_MAGIC, format_args!("magic={m:#x}")),
        Header::Good(_) => o.pass(&SI_MAGIC, format_args!("start_info at {:#x}", s.start_info)),
    }
    let Header::Good(h) = header else {
        for rule in RULES.iter().skip_while(|r| r.id != SI_MAGIC.id).skip(1) {
            o.na(rule, format_args!("no start_info"));
        }
        return;
    };
    let bi = BootData::new(s, h);
    header_rules(&bi, &mut o);
    module_rules(&bi, &mut o);
    map_rules(&bi, &mut o);
    string_rules(&bi, &mut o);
    layout_rules(&bi, &mut o);
    acpi_rules(&bi, &mut o);
}

// ---------------------------------------------------------------------------
// The CPU at entry.

const ENTRY_RULES: [&Rule; 11] = [
    &ENTRY_POINT,
    &ENTRY_CR0,
    &ENTRY_CR4,
    &ENTRY_EFLAGS,
    &ENTRY_EFER,
    &ENTRY_CS,
    &ENTRY_DS,
    &ENTRY_ES,
    &ENTRY_SS,
    &ENTRY_TR,
    &ELF_BSS,
];

/// Names of the set bits of `value` among `bits`, space-separated.
struct BitNames<'a>(u64, &'a [(u64, &'a str)]);

impl fmt::Display for BitNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for &(bit, name) in self.1 {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

const EFLAGS_BITS: [(u64, &str); 3] = [
    (EFLAGS_VM as u64, "VM"),
    (EFLAGS_IF as u64, "IF"),
    (EFLAGS_TF as u64, "TF"),
];

const EFER_BITS: [(u64, &str); 8] = [
    (1 << 0, "SCE"),
    (1 << 8, "LME"),
    (1 << 10, "LMA"),
    (1 << 11, "NXE"),
    (1 << 12, "SVME"),
    (1 << 13, "LMSLE"),
    (1 << 14, "FFXSR"),
    (1 << 15, "TCE"),
];

fn entry_rules(entry: Option<&EntryState>, o: &mut Out<'_>) {
    let Some(st) = entry else {
        for rule in ENTRY_RULES {
            o.na(
                rule,
                format_args!("no entry state (judged outside the guest)"),
            );
        }
        return;
    };
    if !st.captured() {
        for rule in ENTRY_RULES {
            if rule.id == ENTRY_DS.id {
                o.fail(
                    rule,
                    format_args!(
                        "the entry code's writes through DS did not land: DS base is not 0"
                    ),
                );
            } else {
                o.na(rule, format_args!("entry state not captured"));
            }
        }
        return;
    }

    if st.eip == st.eip_linked {
        o.pass(
            &ENTRY_POINT,
            format_args!("EIP {:#x} at the label linked there", st.eip),
        );
    } else {
        o.fail(
            &ENTRY_POINT,
            format_args!(
                "EIP {:#x} at the label linked at {:#x}: CS base or entry address wrong",
                st.eip, st.eip_linked
            ),
        );
    }

    let cr0 = st.cr0;
    let stray = cr0 & !(CR0_PE | CR0_ET);
    let cr0_bits = CR0_BITS.map(|(b, n)| (u64::from(b), n));
    if cr0 & CR0_PE == 0 {
        o.fail(&ENTRY_CR0, format_args!("cr0={cr0:#x}: PE clear"));
    } else if stray != 0 {
        o.fail(
            &ENTRY_CR0,
            format_args!(
                "cr0={cr0:#x}: {} set",
                BitNames(u64::from(stray), &cr0_bits)
            ),
        );
    } else {
        o.pass(&ENTRY_CR0, format_args!("cr0={cr0:#x}"));
    }

    let cr4 = st.cr4;
    if cr4 == 0 {
        o.pass(&ENTRY_CR4, format_args!("cr4=0x0"));
    } else {
        o.fail(&ENTRY_CR4, format_args!("cr4={cr4:#x}"));
    }

    let eflags = st.eflags;
    let bad = eflags & (EFLAGS_VM | EFLAGS_IF | EFLAGS_TF);
    if bad == 0 {
        o.pass(&ENTRY_EFLAGS, format_args!("eflags={eflags:#x}"));
    } else {
        o.fail(
            &ENTRY_EFLAGS,
            format_args!(
                "eflags={eflags:#x}: {} set",
                BitNames(u64::from(bad), &EFLAGS_BITS)
            ),
        );
    }

    let efer = st.efer;
    if efer == 0 {
        o.pass(&ENTRY_EFER, format_args!("efer=0x0"));
    } else {
        o.fail(
            &ENTRY_EFER,
            format_args!("efer={efer:#x}: {} set", BitNames(efer, &EFER_BITS)),
        );
    }

    segment_rule(st, SegReg::Cs, &ENTRY_CS, o, "base 0 (EIP check)");
    segment_rule(
        st,
        SegReg::Ds,
        &ENTRY_DS,
        o,
        "base 0 (writes through DS landed)",
    );
    if st.es_canary == ES_CANARY {
        segment_rule(
            st,
            SegReg::Es,
            &ENTRY_ES,
            o,
            "base 0 (a write through ES landed)",
        );
    } else {
        o.fail(
            &ENTRY_ES,
            format_args!(
                "es={:#x}: a write through ES did not land: ES base is not 0",
                st.es
            ),
        );
    }
    if st.ss_canary == SS_CANARY {
        segment_rule(
            st,
            SegReg::Ss,
            &ENTRY_SS,
            o,
            "base 0 (a write through SS landed)",
        );
    } else {
        o.fail(
            &ENTRY_SS,
            format_args!(
                "ss={:#x}: a write through SS did not land: SS base is not 0",
                st.ss
            ),
        );
    }
    segment_rule(st, SegReg::Tr, &ENTRY_TR, o, "");

    match st.bss_first_nonzero {
        BSS_ALL_ZERO => o.pass(&ELF_BSS, format_args!(".bss all zero")),
        at => o.fail(&ELF_BSS, format_args!("byte {at:#x} of .bss was not zero")),
    }
}

/// Judges the descriptor `reg` selects, or says what could be observed
/// when there is none in the GDT.
fn segment_rule(
    st: &EntryState,
    reg: SegReg,
    rule: &'static Rule,
    o: &mut Out<'_>,
    observed: &str,
) {
    let (name, sel) = (reg.name(), st.selector(reg));
    match st.segment(reg) {
        Ok(d) => {
            let problem = match reg {
                SegReg::Tr => tss_problem(&d),
                SegReg::Cs => flat32_problem(&d, true),
                _ => flat32_problem(&d, false),
            };
            match problem {
                None => o.pass(rule, format_args!("{name}={sel:#x} {d}")),
                Some(p) => o.fail(rule, format_args!("{name}={sel:#x} {d}: {p}")),
            }
        }
        Err(why) => {
            let sep = if observed.is_empty() { "" } else { "; seen: " };
            o.na(
                rule,
                format_args!(
                    "{name}={sel:#x} names no GDT descriptor ({why}): the loaded segment is not visible{sep}{observed}"
                ),
            )
        }
    }
}

// ---------------------------------------------------------------------------
// The start_info and what it points at.

enum Header {
    Unreadable,
    BadMagic(u32),
    Good(StartInfo),
}

impl Header {
    fn read<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Self {
        let mut h = StartInfo::new_zeroed();
        if mem
            .read(addr, &mut h.as_mut_bytes()[..START_INFO_V0_SIZE])
            .is_err()
        {
            return Self::Unreadable;
        }
        if h.magic != START_INFO_MAGIC {
            return Self::BadMagic(h.magic);
        }
        if h.version >= 1 {
            match read_obj::<StartInfo, _>(mem, addr) {
                Ok(full) => h = full,
                Err(_) => return Self::Unreadable,
            }
        }
        Self::Good(h)
    }
}

/// A memory map to judge against: the start_info's (read entry by entry)
/// or one supplied.
enum Map<'a, M: ?Sized> {
    None,
    Table { mem: &'a M, paddr: u64, count: u32 },
    Slice(&'a [MemmapEntry]),
}

// Not derived: a derive would ask `M: Copy`, but only `&M` is copied.
impl<M: ?Sized> Clone for Map<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: ?Sized> Copy for Map<'_, M> {}

impl<M: PhysRead + ?Sized> Map<'_, M> {
    fn len(&self) -> u32 {
        match self {
            Self::None => 0,
            Self::Table { count, .. } => *count,
            Self::Slice(s) => s.len().min(MAX_MAP_ENTRIES as usize) as u32,
        }
    }

    fn get(&self, i: u32) -> Option<MemmapEntry> {
        match self {
            Self::None => None,
            Self::Table { mem, paddr, count } => {
                if i >= *count {
                    return None;
                }
                let at = paddr.checked_add(u64::from(i) * size_of::<MemmapEntry>() as u64)?;
                read_obj(*mem, at).ok()
            }
            Self::Slice(s) => s.get(i as usize).copied(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, MemmapEntry)> + '_ {
        (0..self.len()).map_while(|i| Some((i, self.get(i)?)))
    }

    /// The first address in `start..end` not covered by entries whose type
    /// `accept`s, if any. Each step moves past the end of some entry, so
    /// it takes at most `len() + 1` passes.
    fn first_gap(&self, start: u64, end: u64, accept: impl Fn(MemmapType) -> bool) -> Option<u64> {
        let mut at = start;
        while at < end {
            let next = self
                .iter()
                .filter(|(_, e)| accept(e.type_))
                .filter_map(|(_, e)| {
                    let e_end = e.end().unwrap_or(u64::MAX);
                    (e.addr <= at && at < e_end).then_some(e_end)
                })
                .max();
            match next {
                Some(n) => at = n,
                None => return Some(at),
            }
        }
        None
    }

    /// The type of the entry covering `addr`, if any.
    fn type_at(&self, addr: u64) -> Option<MemmapType> {
        self.iter()
            .find(|(_, e)| e.addr <= addr && addr < e.end().unwrap_or(u64::MAX))
            .map(|(_, e)| e.type_)
    }
}

/// Something the start_info hands over, for the layout rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartName {
    StartInfo,
    ModuleList,
    Memmap,
    Cmdline,
    Module(u32),
    ModuleCmdline(u32),
    Rsdp,
}

impl fmt::Display for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StartInfo => f.write_str("start_info"),
            Self::ModuleList => f.write_str("module list"),
            Self::Memmap => f.write_str("memory map"),
            Self::Cmdline => f.write_str("command line"),
            Self::Module(i) => write!(f, "module {i}"),
            Self::ModuleCmdline(i) => write!(f, "module {i} command line"),
            Self::Rsdp => f.write_str("RSDP"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Part {
    name: PartName,
    start: u64,
    end: u64,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x}..{:#x})", self.name, self.start, self.end)
    }
}

const MAX_PARTS: usize = 5 + 2 * MAX_MODULES as usize;

/// A command line the start_info names.
#[derive(Clone, Copy)]
struct CmdlineRef {
    name: PartName,
    addr: u64,
}

struct BootData<'a, M: ?Sized> {
    s: &'a Subject<'a, M>,
    h: StartInfo,
    /// The start_info's own map (empty for version 0).
    own_map: Map<'a, M>,
    /// The map placement is judged against: the own map, else the fallback.
    map: Map<'a, M>,
}

impl<'a, M: PhysRead + ?Sized> BootData<'a, M> {
    fn new(s: &'a Subject<'a, M>, h: StartInfo) -> Self {
        let own_map = if h.version >= 1 && h.memmap_entries > 0 {
            Map::Table {
                mem: s.mem,
                paddr: h.memmap_paddr,
                count: h.memmap_entries.min(MAX_MAP_ENTRIES),
            }
        } else {
            Map::None
        };
        let map = match (own_map, s.fallback_map) {
            (Map::None, Some(m)) => Map::Slice(m),
            (m, _) => m,
        };
        Self { s, h, own_map, map }
    }

    fn module_count(&self) -> u32 {
        self.h.nr_modules.min(MAX_MODULES)
    }

    /// Module `i`'s entry, if the list is readable there.
    fn module(&self, i: u32) -> Option<ModlistEntry> {
        let at = self
            .h
            .modlist_paddr
            .checked_add(u64::from(i) * size_of::<ModlistEntry>() as u64)?;
        read_obj(self.s.mem, at).ok()
    }

    fn modules(&self) -> impl Iterator<Item = (u32, Option<ModlistEntry>)> + '_ {
        (0..self.module_count()).map(|i| (i, self.module(i)))
    }

    /// A note suffix when not every module was examined.
    fn modules_capped(&self) -> &'static str {
        if self.h.nr_modules > MAX_MODULES {
            " (first 32 modules examined)"
        } else {
            ""
        }
    }

    /// Every command line the start_info names (address non-zero).
    fn cmdlines(&self) -> impl Iterator<Item = CmdlineRef> + '_ {
        let main = (self.h.cmdline_paddr != 0).then_some(CmdlineRef {
            name: PartName::Cmdline,
            addr: self.h.cmdline_paddr,
        });
        main.into_iter().chain(self.modules().filter_map(|(i, m)| {
            let m = m?;
            (m.cmdline_paddr != 0).then_some(CmdlineRef {
                name: PartName::ModuleCmdline(i),
                addr: m.cmdline_paddr,
            })
        }))
    }

    fn cmdline_len(&self, c: &CmdlineRef) -> Result<u32, crate::reader::CmdlineProblem> {
        cstr_len(self.s.mem, c.addr, Limits::DEFAULT.max_cmdline)
    }

    /// Bytes the RSDP at `rsdp_paddr` occupies (20 for revision 0, its
    /// length from revision 2; 20 if it does not check).
    fn rsdp_len(&self) -> u64 {
        match rsdp::check(self.s.mem, self.h.rsdp_paddr) {
            Ok(r) if r.revision >= 2 => u64::from(r.length),
            _ => rsdp::RSDP_V1_LEN as u64,
        }
    }

    /// Everything the start_info hands over that takes memory.
    fn parts(&self) -> ([Part; MAX_PARTS], usize) {
        let mut parts = [Part {
            name: PartName::StartInfo,
            start: 0,
            end: 0,
        }; MAX_PARTS];
        let mut n = 0;
        let mut push = |name, start: u64, len: u64| {
            if len > 0 && n < MAX_PARTS {
                parts[n] = Part {
                    name,
                    start,
                    end: start.saturating_add(len),
                };
                n += 1;
            }
        };
        let si_len = if self.h.version >= 1 { 56 } else { 48 };
        push(PartName::StartInfo, self.s.start_info, si_len);
        let nmod = u64::from(self.h.nr_modules);
        push(
            PartName::ModuleList,
            self.h.modlist_paddr,
            nmod.saturating_mul(size_of::<ModlistEntry>() as u64),
        );
        if let Map::Table { paddr, .. } = self.own_map {
            let n = u64::from(self.h.memmap_entries);
            push(
                PartName::Memmap,
                paddr,
                n.saturating_mul(size_of::<MemmapEntry>() as u64),
            );
        }
        for c in self.cmdlines() {
            if let Ok(len) = self.cmdline_len(&c) {
                push(c.name, c.addr, u64::from(len) + 1);
            }
        }
        for (i, m) in self.modules() {
            if let Some(m) = m {
                push(PartName::Module(i), m.paddr, m.size);
            }
        }
        if self.h.rsdp_paddr != 0 {
            push(PartName::Rsdp, self.h.rsdp_paddr, self.rsdp_len());
        }
        (parts, n)
    }
}

fn header_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    let h = &b.h;
    match h.version {
        0 | 1 => o.pass(&SI_VERSION, format_args!("version={}", h.version)),
        v => o.fail(
            &SI_VERSION,
            format_args!("version={v}: start_info.h defines 0 and 1"),
        ),
    }
    let known = SifFlags::PRIVILEGED
        | SifFlags::INITDOMAIN
        | SifFlags::MULTIBOOT_MOD
        | SifFlags::MOD_START_PFN
        | SifFlags::VIRT_P2M_4TOOLS
        | SifFlags::PM_MASK;
    let unknown = h.flags & !known.bits();
    if unknown == 0 {
        o.pass(&SI_FLAGS, format_args!("flags={:#x}", h.flags));
    } else {
        o.fail(
            &SI_FLAGS,
            format_args!("flags={:#x}: bits {unknown:#x} are not SIF_*", h.flags),
        );
    }
    if h.version == 0 {
        o.na(
            &SI_RESERVED,
            format_args!("version 0 has no reserved field"),
        );
    } else if h.reserved != 0 {
        o.fail(&SI_RESERVED, format_args!("reserved={:#x}", h.reserved));
    } else {
        o.pass(&SI_RESERVED, format_args!("reserved=0"));
    }

    if h.nr_modules > 0 && h.modlist_paddr == 0 {
        o.fail(
            &SI_ADDRESSES,
            format_args!("nr_modules={} with modlist_paddr=0", h.nr_modules),
        );
    } else if h.version >= 1 && h.memmap_entries > 0 && h.memmap_paddr == 0 {
        o.fail(
            &SI_ADDRESSES,
            format_args!("memmap_entries={} with memmap_paddr=0", h.memmap_entries),
        );
    } else if let Some((i, _)) = b
        .modules()
        .find(|(_, m)| m.is_some_and(|m| m.paddr == 0 && m.size > 0))
    {
        o.fail(&SI_ADDRESSES, format_args!("module {i} is at address 0"));
    } else {
        o.pass(&SI_ADDRESSES, format_args!(""));
    }
}

fn module_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    if b.h.nr_modules == 0 {
        o.na(&MOD_RESERVED, format_args!("no modules"));
        o.na(&MOD_ALIGNED, format_args!("no modules"));
        return;
    }
    if b.h.modlist_paddr == 0 || b.module(0).is_none() {
        o.na(&MOD_RESERVED, format_args!("module list not readable"));
        o.na(&MOD_ALIGNED, format_args!("module list not readable"));
        return;
    }
    let capped = b.modules_capped();
    match b
        .modules()
        .find_map(|(i, m)| m.filter(|m| m.reserved != 0).map(|m| (i, m.reserved)))
    {
        Some((i, r)) => o.fail(&MOD_RESERVED, format_args!("module {i}: reserved={r:#x}")),
        None => o.pass(
            &MOD_RESERVED,
            format_args!("{} modules{capped}", b.h.nr_modules),
        ),
    }
    match b
        .modules()
        .find_map(|(i, m)| m.filter(|m| m.paddr % 4096 != 0).map(|m| (i, m.paddr)))
    {
        Some((i, a)) => o.fail(&MOD_ALIGNED, format_args!("module {i} at {a:#x}")),
        None => o.pass(
            &MOD_ALIGNED,
            format_args!("{} modules{capped}", b.h.nr_modules),
        ),
    }
}

fn map_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    let h = &b.h;
    let map = b.own_map;
    if map.len() > 0 {
        o.pass(
            &MAP_PRESENT,
            format_args!("{} entries at {:#x}", h.memmap_entries, h.memmap_paddr),
        );
    } else if b.s.xen {
        o.na(
            &MAP_PRESENT,
            format_args!(
                "version {}, no map: on Xen XENMEM_memory_map is the source",
                h.version
            ),
        );
    } else {
        o.fail(
            &MAP_PRESENT,
            format_args!("version {}, no memory map", h.version),
        );
    }
    let per_entry = [
        &MAP_RESERVED,
        &MAP_TYPES,
        &MAP_SORTED,
        &MAP_DISJOINT,
        &MAP_NO_EMPTY,
    ];
    if map.len() == 0 {
        for rule in per_entry {
            o.na(rule, format_args!("no memory map in the start_info"));
        }
        return;
    }
    let readable = map.iter().count() as u32;
    let capped = if readable < map.len() {
        "; the rest is not readable"
    } else if h.memmap_entries > MAX_MAP_ENTRIES {
        " (first 1024 examined)"
    } else {
        ""
    };
    // A macro, not a `let`: a `format_args!` value cannot outlive its
    // statement before Rust 1.89 (rust-version is lower).
    macro_rules! all {
        () => {
            format_args!("{readable} entries{capped}")
        };
    }

    match map.iter().find(|(_, e)| e.reserved != 0) {
        Some((i, e)) => o.fail(
            &MAP_RESERVED,
            format_args!("entry {i}: reserved={:#x}", { e.reserved }),
        ),
        None => o.pass(&MAP_RESERVED, all!()),
    }
    // An empty entry describes nothing (qboot ends its map with an
    // all-zero one): `memmap.no_empty` reports it, the others skip it.
    let described = || map.iter().filter(|(_, e)| e.size != 0);
    match described().find(|(_, e)| !(1..=7).contains(&{ e.type_ }.0)) {
        Some((i, e)) => o.fail(
            &MAP_TYPES,
            format_args!("entry {i}: type {:#x}", { e.type_ }.0),
        ),
        None => o.pass(&MAP_TYPES, all!()),
    }
    let unsorted = described()
        .zip(described().skip(1))
        .find(|((_, a), (_, b))| b.addr < a.addr);
    match unsorted {
        Some(((_, a), (j, e))) => o.fail(
            &MAP_SORTED,
            format_args!("entry {j} at {:#x} follows one at {:#x}", e.addr, a.addr),
        ),
        None => o.pass(&MAP_SORTED, all!()),
    }
    let overlap = map.iter().find_map(|(i, a)| {
        let a_end = a.end().unwrap_or(u64::MAX);
        map.iter().skip(i as usize + 1).find_map(|(j, e)| {
            let e_end = e.end().unwrap_or(u64::MAX);
            (a.addr < e_end && e.addr < a_end).then_some((i, a, a_end, j, e, e_end))
        })
    });
    match overlap {
        Some((i, a, a_end, j, e, e_end)) => o.fail(
            &MAP_DISJOINT,
            format_args!(
                "entry {i} ({:#x}..{a_end:#x}) and entry {j} ({:#x}..{e_end:#x}) overlap",
                a.addr, e.addr
            ),
        ),
        None => o.pass(&MAP_DISJOINT, all!()),
    }
    match map.iter().find(|(_, e)| e.size == 0) {
        Some((i, e)) => o.fail(
            &MAP_NO_EMPTY,
            format_args!(
                "entry {i} ({:#x}, type {}) has size 0",
                e.addr,
                { e.type_ }.0
            ),
        ),
        None => o.pass(&MAP_NO_EMPTY, all!()),
    }
}

fn string_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    let total = b.cmdlines().count();
    if total == 0 {
        o.na(&STR_TERMINATED, format_args!("no command lines"));
        o.na(&STR_ASCII, format_args!("no command lines"));
        return;
    }
    match b
        .cmdlines()
        .find_map(|c| b.cmdline_len(&c).err().map(|e| (c, e)))
    {
        Some((c, e)) => o.fail(
            &STR_TERMINATED,
            format_args!("{} at {:#x}: {e}", c.name, c.addr),
        ),
        None => o.pass(&STR_TERMINATED, format_args!("{total} command lines")),
    }
    let mut checked = 0;
    let mut bad = None;
    for c in b.cmdlines() {
        let Ok(len) = b.cmdline_len(&c) else { continue };
        checked += 1;
        let mut buf = [0u8; 64];
        let mut off = 0u32;
        while off < len && bad.is_none() {
            let n = (len - off).min(buf.len() as u32) as usize;
            if b.s
                .mem
                .read(c.addr + u64::from(off), &mut buf[..n])
                .is_err()
            {
                break;
            }
            if let Some(k) = buf[..n].iter().position(|&x| x >= 0x80) {
                bad = Some((c, off + k as u32, buf[k]));
            }
            off += n as u32;
        }
        if bad.is_some() {
            break;
        }
    }
    match (bad, checked) {
        (Some((c, at, byte)), _) => o.fail(
            &STR_ASCII,
            format_args!("{} byte {at} is {byte:#04x}", c.name),
        ),
        (None, 0) => o.na(&STR_ASCII, format_args!("no terminated command line")),
        (None, n) => o.pass(&STR_ASCII, format_args!("{n} command lines")),
    }
}

fn layout_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    let (parts, n) = b.parts();
    let parts = &parts[..n];
    let overlaps = |a: &Part, c: &Part| a.start < c.end && c.start < a.end;

    let clash = parts.iter().enumerate().find_map(|(i, a)| {
        parts[i + 1..]
            .iter()
            .find(|c| overlaps(a, c))
            .map(|c| (*a, *c))
    });
    match clash {
        Some((a, c)) => o.fail(&LAYOUT_DISJOINT, format_args!("{a} overlaps {c}")),
        None => o.pass(&LAYOUT_DISJOINT, format_args!("{n} parts")),
    }

    match &b.s.image {
        None => o.na(&LAYOUT_IMAGE, format_args!("image range not known")),
        Some(image) => {
            let img = Part {
                name: PartName::StartInfo,
                start: image.start,
                end: image.end,
            };
            match parts.iter().find(|p| overlaps(p, &img)) {
                Some(p) => o.fail(
                    &LAYOUT_IMAGE,
                    format_args!(
                        "{p} overlaps the image ({:#x}..{:#x})",
                        image.start, image.end
                    ),
                ),
                None => o.pass(
                    &LAYOUT_IMAGE,
                    format_args!("image {:#x}..{:#x}", image.start, image.end),
                ),
            }
        }
    }

    if b.map.len() == 0 {
        o.na(&LAYOUT_IN_RAM, format_args!("no memory map"));
    } else {
        let gap = parts
            .iter()
            .filter(|p| p.name != PartName::Rsdp)
            .find_map(|p| {
                b.map
                    .first_gap(p.start, p.end, |t| t == MemmapType::RAM)
                    .map(|at| (*p, at))
            });
        match gap {
            Some((p, at)) => match b.map.type_at(at) {
                Some(t) => o.fail(
                    &LAYOUT_IN_RAM,
                    format_args!("{p}: {at:#x} is type {} in the map", t.0),
                ),
                None => o.fail(
                    &LAYOUT_IN_RAM,
                    format_args!("{p}: {at:#x} is not in the map"),
                ),
            },
            None => o.pass(&LAYOUT_IN_RAM, format_args!("{n} parts")),
        }
    }

    match parts.iter().find(|p| p.end > 1 << 32) {
        Some(p) => o.fail(&LAYOUT_BELOW_4G, format_args!("{p} ends above 4 GiB")),
        None => o.pass(&LAYOUT_BELOW_4G, format_args!("{n} parts")),
    }

    let tables = [
        (PartName::StartInfo, b.s.start_info, true),
        (PartName::ModuleList, b.h.modlist_paddr, b.h.nr_modules > 0),
        (
            PartName::Memmap,
            b.h.memmap_paddr,
            matches!(b.own_map, Map::Table { .. }),
        ),
    ];
    match tables
        .iter()
        .find(|(_, addr, present)| *present && addr % 8 != 0)
    {
        Some((name, addr, _)) => o.fail(&LAYOUT_ALIGNED, format_args!("{name} at {addr:#x}")),
        None => o.pass(&LAYOUT_ALIGNED, format_args!("")),
    }
}

fn acpi_rules<M: PhysRead + ?Sized>(b: &BootData<'_, M>, o: &mut Out<'_>) {
    let mem = b.s.mem;
    let paddr = b.h.rsdp_paddr;
    let scanned = if paddr == 0 {
        rsdp::scan_legacy(mem)
    } else {
        None
    };
    match (paddr, scanned) {
        (0, Some(found)) => o.fail(
            &RSDP_PASSED,
            format_args!("rsdp_paddr=0 but an RSDP is at {found:#x}"),
        ),
        (0, None) => o.na(
            &RSDP_PASSED,
            format_args!("rsdp_paddr=0 and no RSDP in the EBDA or BIOS area"),
        ),
        (p, _) => o.pass(&RSDP_PASSED, format_args!("rsdp_paddr={p:#x}")),
    }
    if paddr == 0 {
        o.na(&RSDP_VALID, format_args!("rsdp_paddr=0"));
    } else {
        match rsdp::check(mem, paddr) {
            Err(e) => o.fail(&RSDP_VALID, format_args!("{e}")),
            Ok(r) if r.revision == 1 => o.fail(
                &RSDP_VALID,
                format_args!("revision 1 is not defined (0 = ACPI 1.0, 2 = ACPI 2.0+)"),
            ),
            Ok(r) => o.pass(
                &RSDP_VALID,
                format_args!("at {paddr:#x}, revision {}", r.revision),
            ),
        }
    }

    // The tables: from rsdp_paddr, else from where a scan finds them.
    let rsdp_at = if paddr != 0 { Some(paddr) } else { scanned };
    let Some((rsdp_addr, r)) = rsdp_at.and_then(|a| Some((a, rsdp::check(mem, a).ok()?))) else {
        o.na(&ACPI_TABLES, format_args!("no valid RSDP"));
        o.na(&ACPI_IN_MAP, format_args!("no valid RSDP"));
        return;
    };
    let mut count = 0u32;
    let mut first_bad: Option<(Reached, u64, acpi::TableError)> = None;
    let named_root = acpi::walk(mem, &r, &mut |what, addr, h| {
        count += 1;
        if let (Err(e), None) = (h, &first_bad) {
            first_bad = Some((what, addr, e));
        }
    });
    match (named_root, first_bad) {
        (false, _) => o.fail(
            &ACPI_TABLES,
            format_args!("the RSDP names neither an XSDT nor an RSDT"),
        ),
        (true, Some((what, addr, e))) => {
            o.fail(&ACPI_TABLES, format_args!("{what} at {addr:#x}: {e}"))
        }
        (true, None) => o.pass(&ACPI_TABLES, format_args!("{count} tables")),
    }

    if b.map.len() == 0 {
        o.na(&ACPI_IN_MAP, format_args!("no memory map"));
        return;
    }
    let firmware =
        |t: MemmapType| t == MemmapType::RESERVED || t == MemmapType::ACPI || t == MemmapType::NVS;
    let rsdp_len = if r.revision >= 2 {
        u64::from(r.length)
    } else {
        rsdp::RSDP_V1_LEN as u64
    };
    let mut bad: Option<(Option<Reached>, u64, u64, u64)> = b
        .map
        .first_gap(rsdp_addr, rsdp_addr + rsdp_len, firmware)
        .map(|at| (None, rsdp_addr, rsdp_addr + rsdp_len, at));
    acpi::walk(mem, &r, &mut |what, addr, h| {
        let Ok(h) = h else { return };
        let end = addr.saturating_add(u64::from(h.length));
        if bad.is_none() {
            if let Some(at) = b.map.first_gap(addr, end, firmware) {
                bad = Some((Some(what), addr, end, at));
            }
        }
    });
    match bad {
        None => o.pass(
            &ACPI_IN_MAP,
            format_args!("RSDP at {rsdp_addr:#x} and its tables"),
        ),
        Some((what, start, end, at)) => {
            let name = Named(what);
            match b.map.type_at(at) {
                Some(t) => o.fail(
                    &ACPI_IN_MAP,
                    format_args!(
                        "{name} ({start:#x}..{end:#x}): {at:#x} is type {} in the map",
                        t.0
                    ),
                ),
                None => o.fail(
                    &ACPI_IN_MAP,
                    format_args!("{name} ({start:#x}..{end:#x}): {at:#x} is not in the map"),
                ),
            }
        }
    }
}

/// "RSDP" or the table [`acpi::walk`] reached.
struct Named(Option<Reached>);

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("RSDP"),
            Some(r) => write!(f, "{r}"),
        }
    }
}
