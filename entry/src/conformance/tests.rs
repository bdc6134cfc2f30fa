//! The rules on hand-made boots: a conforming one (every rule passes) and
//! one violation per rule, each built by changing the bytes or registers
//! of the conforming boot at offsets taken from start_info.h, the ACPI
//! specification and the Intel SDM, never from the code under test.

use super::cpu::*;
use super::*;
use crate::memory::SliceMemory;
use crate::start_info::{MemmapType, SifFlags};
use crate::writer::{ModuleSpec, Placement, StartInfoSpec, write_start_info};
use std::string::{String, ToString};
use std::vec::Vec;

const SI: u64 = 0x6000;
const MODLIST: u64 = 0x6100;
const MEMMAP: u64 = 0x6200;
const STRINGS: u64 = 0x6400;
const MOD0: u64 = 0x10_0000;
const MOD1: u64 = 0x11_0000;
const RSDP: u64 = 0xe_0000;
const XSDT: u64 = 0xe_0040;
const MADT: u64 = 0xe_0100;
const IMAGE: core::ops::Range<u64> = 0x18_0000..0x19_0000;
const MEM_SIZE: usize = 0x20_0000;

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

/// An ACPI table with a fixed-up checksum.
fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.extend_from_slice(&[2, 0]);
    t.extend_from_slice(b"PVHTSTTESTTABL\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    t.truncate(36);
    t.extend_from_slice(body);
    t[9] = 0u8.wrapping_sub(sum(&t));
    t
}

struct Boot {
    mem: Vec<u8>,
    entry: EntryState,
    xen: bool,
    fallback: Option<Vec<MemmapEntry>>,
}

impl Boot {
    /// A boot every rule passes: pvh's layout in small.
    fn good() -> Self {
        let mut mem = SliceMemory::new(0, vec![0u8; MEM_SIZE]);
        let modules = [
            ModuleSpec {
                paddr: MOD0,
                size: 0x1234,
                cmdline: Some(b"initrd"),
            },
            ModuleSpec {
                paddr: MOD1,
                size: 0x800,
                cmdline: None,
            },
        ];
        let memmap = [
            MemmapEntry::new(0, 0x9_fc00, MemmapType::RAM),
            MemmapEntry::new(0x9_fc00, 0x400, MemmapType::RESERVED),
            MemmapEntry::new(0xe_0000, 0x2_0000, MemmapType::RESERVED),
            MemmapEntry::new(0x10_0000, 0x10_0000, MemmapType::RAM),
        ];
        let spec = StartInfoSpec {
            version: 1,
            flags: SifFlags::empty(),
            cmdline: Some(b"console=ttyS0 a,b=c"),
            rsdp_paddr: RSDP,
            modules: &modules,
            memmap: &memmap,
        };
        let placement = Placement {
            start_info: SI,
            modlist: MODLIST,
            memmap: MEMMAP,
            strings: STRINGS,
        };
        write_start_info(&mut mem, &spec, &placement).unwrap();
        let mut mem = mem.into_inner();

        // ACPI: RSDP (revision 2) -> XSDT -> MADT.
        let mut madt_body = Vec::new();
        madt_body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&1u32.to_le_bytes());
        madt_body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        let madt = sdt(b"APIC", &madt_body);
        let xsdt = sdt(b"XSDT", &MADT.to_le_bytes());
        let mut rsdp = [0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&XSDT.to_le_bytes());
        rsdp[8] = 0u8.wrapping_sub(sum(&rsdp[..20]));
        rsdp[32] = 0u8.wrapping_sub(sum(&rsdp));
        let at = |a: u64| a as usize;
        mem[at(RSDP)..at(RSDP) + 36].copy_from_slice(&rsdp);
        mem[at(XSDT)..at(XSDT) + xsdt.len()].copy_from_slice(&xsdt);
        mem[at(MADT)..at(MADT) + madt.len()].copy_from_slice(&madt);

        // The CPU as pvh's loader sets it: GDT at 0x500 with null, code,
        // data, TSS (Firecracker's layout).
        let mut e = EntryState::ZERO;
        e.magic = ENTRY_STATE_MAGIC;
        e.eflags = 0x2;
        e.cr0 = CR0_PE | CR0_ET;
        e.ebx = SI as u32;
        e.eip = 0x10_0010;
        e.eip_linked = 0x10_0010;
        e.bss_first_nonzero = BSS_ALL_ZERO;
        e.es_canary = ES_CANARY;
        e.ss_canary = SS_CANARY;
        e.cs = 0x08;
        (e.ds, e.es, e.ss, e.fs, e.gs) = (0x10, 0x10, 0x10, 0x10, 0x10);
        e.tr = 0x18;
        set_gdt(
            &mut e,
            &[
                0,
                0x00cf_9b00_0000_ffff,
                0x00cf_9300_0000_ffff,
                0x0000_8b00_0000_0067,
            ],
        );
        Self {
            mem,
            entry: e,
            xen: false,
            fallback: None,
        }
    }

    fn put(&mut self, addr: u64, bytes: &[u8]) {
        self.mem[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
    }

    fn put32(&mut self, addr: u64, v: u32) {
        self.put(addr, &v.to_le_bytes());
    }

    fn put64(&mut self, addr: u64, v: u64) {
        self.put(addr, &v.to_le_bytes());
    }

    /// Map entry `i`: (addr, size, type).
    fn set_map_entry(&mut self, i: u64, addr: u64, size: u64, type_: u32) {
        let at = MEMMAP + 24 * i;
        self.put64(at, addr);
        self.put64(at + 8, size);
        self.put32(at + 16, type_);
    }

    fn findings(&self) -> Vec<(&'static str, Outcome, String)> {
        let mem = SliceMemory::new(0, self.mem.as_slice());
        let subject = Subject {
            mem: &mem,
            start_info: SI,
            entry: Some(&self.entry),
            image: Some(IMAGE),
            fallback_map: self.fallback.as_deref(),
            xen: self.xen,
        };
        let mut v = Vec::new();
        check(&subject, &mut |f| {
            v.push((f.rule.id, f.outcome, f.note.to_string()))
        });
        v
    }
}

fn set_gdt(e: &mut EntryState, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        e.gdt[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    e.gdt_len = (words.len() * 8) as u32;
    e.gdtr[..2].copy_from_slice(&((words.len() * 8 - 1) as u16).to_le_bytes());
    e.gdtr[2..6].copy_from_slice(&0x500u32.to_le_bytes());
}

fn ids() -> Vec<&'static str> {
    RULES.iter().map(|r| r.id).collect()
}

#[test]
fn rule_ids_are_unique_dotted_and_reported_in_order() {
    let all = ids();
    for (i, id) in all.iter().enumerate() {
        assert!(!all[..i].contains(id), "{id} twice");
        let (area, what) = id.split_once('.').unwrap();
        assert!(!area.is_empty() && !what.is_empty(), "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'),
            "{id}"
        );
    }
    assert_eq!(all.len(), 35);
    // Whatever the input, every rule reports once, in RULES order.
    let mut bad_magic = Boot::good();
    bad_magic.put32(SI, 0);
    let mut not_captured = Boot::good();
    not_captured.entry.magic = 0;
    for boot in [Boot::good(), bad_magic, not_captured] {
        let got: Vec<_> = boot.findings().iter().map(|f| f.0).collect();
        assert_eq!(got, all);
    }
}

#[test]
fn a_conforming_boot_passes_every_rule() {
    for (id, outcome, note) in Boot::good().findings() {
        assert_eq!(outcome, Outcome::Pass, "{id}: {note}");
    }
}

#[test]
fn findings_print_as_outcome_level_note_and_parse_back() {
    let mut b = Boot::good();
    b.entry.cr4 = 0x20;
    let mem = SliceMemory::new(0, b.mem.as_slice());
    let subject = Subject {
        mem: &mem,
        start_info: SI,
        entry: Some(&b.entry),
        image: None,
        fallback_map: None,
        xen: false,
    };
    let mut lines = Vec::new();
    let mut tally = Tally::default();
    check(&subject, &mut |f| {
        tally.add(f);
        lines.push(format!("{}={f}", f.rule.id));
    });
    assert!(lines.contains(&"entry.cr4=FAIL MUST cr4=0x20".to_string()));
    assert!(lines.contains(&"layout.image=N/A MUST image range not known".to_string()));
    assert_eq!(
        parse_verdict("FAIL MUST cr4=0x20 and more"),
        Some((Outcome::Fail, Level::Must, "cr4=0x20 and more"))
    );
    assert_eq!(
        parse_verdict("PASS SHOULD"),
        Some((Outcome::Pass, Level::Should, ""))
    );
    assert_eq!(parse_verdict("MAYBE MUST"), None);
    assert_eq!(
        tally,
        Tally {
            must_failed: 1,
            should_failed: 0,
            passed: 33,
            not_applicable: 1
        }
    );
}

/// Applies `change` to a conforming boot and checks that `rule` fails with
/// a note containing `note`, that the rules in `also` fail too, and that
/// nothing else fails.
fn violates(rule: &str, note: &str, also: &[&str], change: impl FnOnce(&mut Boot)) {
    let mut b = Boot::good();
    change(&mut b);
    let findings = b.findings();
    let (_, outcome, got) = findings
        .iter()
        .find(|f| f.0 == rule)
        .unwrap_or_else(|| panic!("no finding for {rule}"));
    assert_eq!(*outcome, Outcome::Fail, "{rule}: {got}");
    assert!(got.contains(note), "{rule}: note {got:?} lacks {note:?}");
    for (id, outcome, n) in &findings {
        if *id != rule && *outcome == Outcome::Fail {
            assert!(also.contains(id), "{rule}: {id} failed too: {n}");
        }
    }
    for id in also {
        let f = findings.iter().find(|f| f.0 == *id).unwrap();
        assert_eq!(f.1, Outcome::Fail, "{rule}: {id} should fail too");
    }
}

#[test]
fn each_cpu_rule_catches_its_violation() {
    violates("entry.entry_point", "linked at 0x100010", &[], |b| {
        b.entry.eip = 0x10;
    });
    // Reset state: CD and NW set (0x60000011).
    violates("entry.cr0", "cr0=0x60000011: NW CD set", &[], |b| {
        b.entry.cr0 |= 0x6000_0000;
    });
    violates("entry.cr0", "PE clear", &[], |b| b.entry.cr0 = CR0_ET);
    violates("entry.cr4", "cr4=0x20", &[], |b| b.entry.cr4 = 0x20);
    violates("entry.eflags", "eflags=0x302: IF TF set", &[], |b| {
        b.entry.eflags = 0x302;
    });
    violates("entry.efer", "efer=0x500: LME LMA set", &[], |b| {
        b.entry.efer = 0x500;
    });
    // CS names the 64-bit code descriptor of a long-mode GDT.
    violates("entry.cs", "64-bit (L set)", &[], |b| {
        set_gdt(
            &mut b.entry,
            &[
                0,
                0x00af_9b00_0000_ffff,
                0x00cf_9300_0000_ffff,
                0x0000_8b00_0000_0067,
            ],
        );
    });
    violates("entry.ds", "not a data segment", &[], |b| b.entry.ds = 0x08);
    violates("entry.es", "ES base is not 0", &[], |b| {
        b.entry.es_canary = 0
    });
    violates("entry.ss", "16-bit", &[], |b| {
        set_gdt(
            &mut b.entry,
            &[
                0,
                0x00cf_9b00_0000_ffff,
                0x00cf_9300_0000_ffff,
                0x0000_8b00_0000_0067,
                0x008f_9300_0000_ffff,
            ],
        );
        b.entry.ss = 0x20;
    });
    violates("entry.ss", "SS base is not 0", &[], |b| {
        b.entry.ss_canary = 1
    });
    // An available (not busy) TSS.
    violates("entry.tr", "not a busy 32-bit TSS", &[], |b| {
        b.entry.gdt[0x18 + 5] = 0x89;
    });
    violates("elf.bss_zeroed", "byte 0x40 of .bss", &[], |b| {
        b.entry.bss_first_nonzero = 0x40;
    });
    // The whole record missing: DS's base was wrong.
    violates("entry.ds", "DS base is not 0", &[], |b| b.entry.magic = 0);
}

#[test]
fn selectors_without_gdt_descriptors_are_not_judged_on_the_gdt() {
    // Xen: selectors 0 and no GDT; QEMU's option ROM: TR 0.
    let mut b = Boot::good();
    (b.entry.cs, b.entry.ds, b.entry.es, b.entry.ss, b.entry.tr) = (0, 0, 0, 0, 0);
    b.entry.gdtr = [0; 8];
    b.entry.gdt_len = 1;
    let f = b.findings();
    for id in ["entry.cs", "entry.ds", "entry.es", "entry.ss", "entry.tr"] {
        let (_, outcome, note) = f.iter().find(|f| f.0 == id).unwrap();
        assert_eq!(*outcome, Outcome::NotApplicable, "{id}: {note}");
        assert!(note.contains("=0x0 names no GDT descriptor"), "{note}");
    }
    let (_, _, cs) = f.iter().find(|f| f.0 == "entry.cs").unwrap();
    assert!(cs.contains("base 0 (EIP check)"), "{cs}");
    // No entry state at all: every CPU rule N/A, the rest still judged.
    let mem = SliceMemory::new(0, b.mem.as_slice());
    let subject = Subject {
        mem: &mem,
        start_info: SI,
        entry: None,
        image: None,
        fallback_map: None,
        xen: false,
    };
    check(&subject, &mut |f| {
        if f.rule.id.starts_with("entry.") || f.rule.id.starts_with("elf.") {
            assert_eq!(f.outcome, Outcome::NotApplicable, "{}", f.rule.id);
        } else if f.rule.id != "layout.image" {
            assert_eq!(f.outcome, Outcome::Pass, "{}: {}", f.rule.id, f.note);
        }
    });
}

#[test]
fn each_start_info_rule_catches_its_violation() {
    violates("start_info.magic", "magic=0x336ec579", &[], |b| {
        b.put32(SI, 0x336e_c579);
    });
    violates("start_info.version", "version=2", &[], |b| {
        b.put32(SI + 4, 2)
    });
    violates(
        "start_info.flags",
        "bits 0x80000000 are not SIF_*",
        &[],
        |b| b.put32(SI + 8, 0x8000_0003),
    );
    violates("start_info.reserved", "reserved=0x1", &[], |b| {
        b.put32(SI + 52, 1)
    });
    // Two modules counted, no list: the module rules cannot look.
    violates(
        "start_info.addresses",
        "nr_modules=2 with modlist_paddr=0",
        &[],
        |b| b.put64(SI + 16, 0),
    );
    violates(
        "start_info.addresses",
        "module 1 is at address 0",
        &[],
        |b| b.put64(MODLIST + 32, 0),
    );
    violates("modules.reserved", "module 1: reserved=0x7", &[], |b| {
        b.put64(MODLIST + 32 + 24, 7)
    });
    violates("modules.page_aligned", "module 0 at 0x100800", &[], |b| {
        b.put64(MODLIST, MOD0 + 0x800)
    });
}

#[test]
fn each_memory_map_rule_catches_its_violation() {
    // Version 0: no map; a failure off Xen, N/A on Xen.
    violates("memmap.present", "version 0, no memory map", &[], |b| {
        b.put32(SI + 4, 0)
    });
    let mut xen = Boot::good();
    xen.put32(SI + 4, 0);
    xen.xen = true;
    let f = xen.findings();
    let present = f.iter().find(|f| f.0 == "memmap.present").unwrap();
    assert_eq!(present.1, Outcome::NotApplicable, "{}", present.2);
    // Without a map in the start_info, placement is judged against the
    // map Xen gives by hypercall.
    let in_ram = f.iter().find(|f| f.0 == "layout.in_ram").unwrap();
    assert_eq!(in_ram.1, Outcome::NotApplicable, "{}", in_ram.2);
    xen.fallback = Some(vec![MemmapEntry::new(0, 0x1_0000, MemmapType::RAM)]);
    let f = xen.findings();
    let in_ram = f.iter().find(|f| f.0 == "layout.in_ram").unwrap();
    assert_eq!(in_ram.1, Outcome::Fail);
    assert!(in_ram.2.starts_with("module 0 "), "{}", in_ram.2);

    violates("memmap.reserved", "entry 2: reserved=0x9", &[], |b| {
        b.put32(MEMMAP + 2 * 24 + 20, 9)
    });
    violates("memmap.types", "entry 1: type 0xf0000001", &[], |b| {
        b.put32(MEMMAP + 24 + 16, 0xf000_0001)
    });
    // Firecracker's order: the RAM above 1 MiB listed last... here first.
    violates(
        "memmap.sorted",
        "entry 1 at 0x9fc00 follows one at 0x100000",
        &[],
        |b| {
            b.set_map_entry(0, 0x10_0000, 0x10_0000, 1);
            b.set_map_entry(3, 0, 0x9_fc00, 1);
        },
    );
    violates(
        "memmap.disjoint",
        "entry 0 (0x0..0xa0000) and entry 1 (0x9fc00..0xa0000) overlap",
        &[],
        |b| b.set_map_entry(0, 0, 0xa_0000, 1),
    );
    // qboot's map ends with an all-zero entry.
    violates(
        "memmap.no_empty",
        "entry 4 (0x0, type 0) has size 0",
        &[],
        |b| b.put32(SI + 48, 5),
    );
}

#[test]
fn each_string_rule_catches_its_violation() {
    // The main command line runs to the end of memory without a NUL.
    violates("strings.terminated", "command line at 0x1ffff0", &[], |b| {
        b.put64(SI + 24, 0x1f_fff0);
        b.put(0x1f_fff0, &[b'x'; 16]);
    });
    violates(
        "strings.ascii",
        "module 0 command line byte 2 is 0xe9",
        &[],
        |b| {
            let (c, _) = module0_cmdline(b);
            b.put(c + 2, &[0xe9]);
        },
    );
}

/// Module 0's command line address and length, read from the list.
fn module0_cmdline(b: &Boot) -> (u64, usize) {
    let at = (MODLIST + 16) as usize;
    let c = u64::from_le_bytes(b.mem[at..at + 8].try_into().unwrap());
    (c, b"initrd".len())
}

#[test]
fn each_layout_rule_catches_its_violation() {
    // Module 1 moved onto the start_info.
    violates(
        "layout.disjoint",
        "start_info (0x6000..0x6038) overlaps module 1 (0x6000..0x6800)",
        &[],
        |b| b.put64(MODLIST + 32, SI),
    );
    violates(
        "layout.image",
        "module 1 (0x180000..0x180800) overlaps the image",
        &[],
        |b| b.put64(MODLIST + 32, IMAGE.start),
    );
    // In the hole between 640 KiB and the BIOS area (not in the map).
    violates(
        "layout.in_ram",
        "module 1 (0xa0000..0xa0800): 0xa0000 is not in the map",
        &[],
        |b| b.put64(MODLIST + 32, 0xa_0000),
    );
    violates(
        "layout.in_ram",
        "0x9fc00 is type 2 in the map",
        &["modules.page_aligned"],
        |b| b.put64(MODLIST + 32, 0x9_f800),
    );
    violates(
        "layout.below_4g",
        "module 1 (0x100000000..0x100000800) ends above 4 GiB",
        &["layout.in_ram"],
        |b| b.put64(MODLIST + 32, 1 << 32),
    );
    // The module list 4 bytes further on.
    violates("layout.aligned", "module list at 0x6104", &[], |b| {
        let list: Vec<u8> = b.mem[MODLIST as usize..MODLIST as usize + 64].to_vec();
        b.put(MODLIST + 4, &list);
        b.put64(SI + 16, MODLIST + 4);
    });
}

/// The start_info itself moved to `SI + 4` (the subject's address moves
/// with it).
#[test]
fn misaligned_start_info_is_reported() {
    let mut b = Boot::good();
    let si: Vec<u8> = b.mem[SI as usize..SI as usize + 56].to_vec();
    b.put(SI + 4, &si);
    let mem = SliceMemory::new(0, b.mem.as_slice());
    let subject = Subject {
        mem: &mem,
        start_info: SI + 4,
        entry: None,
        image: None,
        fallback_map: None,
        xen: false,
    };
    let mut seen = None;
    check(&subject, &mut |f| {
        if f.rule.id == "layout.aligned" {
            seen = Some((f.outcome, f.note.to_string()));
        }
    });
    assert_eq!(
        seen,
        Some((Outcome::Fail, "start_info at 0x6004".to_string()))
    );
}

#[test]
fn each_acpi_rule_catches_its_violation() {
    // Firecracker: tables built, rsdp_paddr = 0.
    violates(
        "rsdp.passed",
        "rsdp_paddr=0 but an RSDP is at 0xe0000",
        &[],
        |b| b.put64(SI + 32, 0),
    );
    violates("rsdp.valid", "ACPI 1.0 checksum", &[], |b| {
        b.mem[RSDP as usize + 10] ^= 0x40;
    });
    // Revision 1 has no XSDT field, so the tables are out of reach too.
    violates(
        "rsdp.valid",
        "revision 1 is not defined",
        &["acpi.tables"],
        |b| {
            // Revision 2 -> 1 and the first checksum back to zero; the
            // extended checksum covers both bytes and stays right.
            b.mem[RSDP as usize + 15] = 1;
            b.mem[RSDP as usize + 8] = b.mem[RSDP as usize + 8].wrapping_add(1);
        },
    );
    violates("acpi.tables", "root entry 0 at 0xe0100", &[], |b| {
        b.mem[MADT as usize + 40] ^= 1;
    });
    // Cloud Hypervisor: the map does not cover where the tables are.
    violates(
        "acpi.in_map",
        "RSDP (0xe0000..0xe0024): 0xe0000 is not in the map",
        &[],
        |b| b.set_map_entry(2, 0xf_0000, 0x1_0000, 2),
    );
    violates("acpi.in_map", "root table (0xe0040..", &[], |b| {
        b.set_map_entry(2, 0xe_0000, 0x40, 2);
        b.set_map_entry(3, 0xe_0040, 0x11_ffc0, 1);
    });
}

#[test]
fn absurd_start_infos_never_panic_and_stay_bounded() {
    // Huge counts pointing into memory full of 0xff.
    let mut b = Boot::good();
    b.put32(SI + 12, u32::MAX);
    b.put32(SI + 48, u32::MAX);
    b.put64(SI + 16, 0x1f_f000);
    b.put64(SI + 40, 0x1f_f000);
    b.put(0x1f_f000, &[0xff; 0x1000]);
    let f = b.findings();
    assert_eq!(f.len(), RULES.len());
    let capped = f.iter().find(|f| f.0 == "modules.reserved").unwrap();
    assert!(capped.2.contains("first 32 modules") || capped.1 == Outcome::Fail);
    // A start_info at the very end of memory.
    let mem = SliceMemory::new(0, vec![0u8; 16]);
    let subject = Subject {
        mem: &mem,
        start_info: 8,
        entry: None,
        image: None,
        fallback_map: None,
        xen: false,
    };
    let mut n = 0;
    check(&subject, &mut |f| {
        n += 1;
        if f.rule.id == "start_info.magic" {
            assert_eq!(f.note.to_string(), "start_info at 0x8 is not readable");
        }
    });
    assert_eq!(n, RULES.len());
}

#[test]
fn notes_are_cut_with_an_ellipsis() {
    use core::fmt::Write;
    let mut n = Note::new();
    write!(n, "{}", "x".repeat(200)).unwrap();
    assert_eq!(n.as_str().len(), NOTE_LEN);
    assert!(n.as_str().ends_with("xx..."));
    let mut n = Note::new();
    write!(n, "{}é", "a".repeat(NOTE_LEN - 1)).unwrap();
    assert!(n.as_str().len() <= NOTE_LEN, "{}", n.as_str());
    assert!(n.as_str().is_char_boundary(n.as_str().len()));
}
