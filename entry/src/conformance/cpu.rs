//! The CPU state a hypervisor hands a PVH guest at its entry point, as the
//! runtime's 32-bit entry code records it before changing anything
//! (`entry/src/rt/entry.rs`), and the checks of that state against Xen's
//! `docs/misc/pvh.pandoc`.
//!
//! A guest cannot read the hidden part of a segment register (base, limit,
//! attributes) directly. What it can see:
//! - the descriptor the selector names in the GDT the hypervisor set up
//!   (`SGDT`), which is what the CPU would load on a reload of that
//!   selector, and which Firecracker, Cloud Hypervisor and pvh write to
//!   match the hidden state; Xen and QEMU's option ROM leave selectors that
//!   name no such descriptor, and then the rule is judged on what can be
//!   observed only;
//! - the effect of the hidden bases: the EIP the CPU reports at a label
//!   (`call`/`pop`) is the label's linear address only if CS's base is 0
//!   and the entry was the `PHYS32_ENTRY` address; a write through ES
//!   (`stos`) or SS (`%ss:` override) lands where Rust later reads it only
//!   if that segment's base is 0; and the whole record lands only if DS's
//!   base is 0.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// [`EntryState::magic`] once the entry code has filled the record.
pub const ENTRY_STATE_MAGIC: u32 = 0x5056_4845;
/// What the entry code writes to [`EntryState::es_canary`] through ES.
pub const ES_CANARY: u32 = 0x4553_4553;
/// What the entry code writes to [`EntryState::ss_canary`] through SS.
pub const SS_CANARY: u32 = 0x5353_5353;
/// How many bytes of the hypervisor's GDT the entry code copies (from its
/// base, at most `limit + 1`): 32 descriptors, more than any hypervisor
/// here uses.
pub const GDT_COPY_LEN: usize = 256;
/// [`EntryState::bss_first_nonzero`] when every `.bss` byte was zero.
pub const BSS_ALL_ZERO: u32 = u32::MAX;

/// The record the entry code fills, in `.data` (a `.bss` record would be
/// zeroed by the same code). The layout is the contract with the assembly:
/// it writes each field at the `offset_of!` the runtime passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EntryState {
    /// [`ENTRY_STATE_MAGIC`], written last.
    pub magic: u32,
    /// EFLAGS at entry (`pushf`, before `cli`/`cld`).
    pub eflags: u32,
    /// CR0.
    pub cr0: u32,
    /// CR3 (meaningless with paging off; recorded for completeness).
    pub cr3: u32,
    /// CR4.
    pub cr4: u32,
    /// EBX: the start_info's address.
    pub ebx: u32,
    /// IA32_EFER (MSR 0xC000_0080).
    pub efer: u64,
    /// ESP (unspecified by PVH; 0 is common).
    pub esp: u32,
    /// EIP the CPU pushed for a label in the entry code (`call`/`pop`):
    /// the label's offset in CS.
    pub eip: u32,
    /// The label's link-time (= physical) address.
    pub eip_linked: u32,
    /// Offset of the first non-zero byte of `.bss` before the runtime
    /// zeroed it, [`BSS_ALL_ZERO`] if none.
    pub bss_first_nonzero: u32,
    /// [`ES_CANARY`] if the write through ES landed here.
    pub es_canary: u32,
    /// [`SS_CANARY`] if the write through SS landed here.
    pub ss_canary: u32,
    /// CS selector.
    pub cs: u16,
    /// DS selector.
    pub ds: u16,
    /// ES selector.
    pub es: u16,
    /// SS selector.
    pub ss: u16,
    /// FS selector.
    pub fs: u16,
    /// GS selector.
    pub gs: u16,
    /// Task register selector (`STR`).
    pub tr: u16,
    /// LDTR selector (`SLDT`).
    pub ldtr: u16,
    /// `SGDT` output: limit (2 bytes), base (4 bytes), 2 unused.
    pub gdtr: [u8; 8],
    /// `SIDT` output, same layout.
    pub idtr: [u8; 8],
    /// Bytes of the GDT copied into [`EntryState::gdt`].
    pub gdt_len: u32,
    /// The entry code's first stack (for `pushf` and `call`).
    pub scratch: [u32; 5],
    /// The first [`EntryState::gdt_len`] bytes of the GDT.
    pub gdt: [u8; GDT_COPY_LEN],
}

const _: () = {
    assert!(size_of::<EntryState>() == 112 + GDT_COPY_LEN);
    assert!(offset_of!(EntryState, efer) == 24);
    assert!(offset_of!(EntryState, cs) == 56);
    assert!(offset_of!(EntryState, ldtr) == 70);
    assert!(offset_of!(EntryState, gdtr) == 72);
    assert!(offset_of!(EntryState, idtr) == 80);
    assert!(offset_of!(EntryState, gdt_len) == 88);
    assert!(offset_of!(EntryState, scratch) == 92);
    assert!(offset_of!(EntryState, gdt) == 112);
};

/// A descriptor-table register as `SGDT`/`SIDT` store it in 32-bit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRegister {
    /// Linear base.
    pub base: u32,
    /// Limit (bytes - 1).
    pub limit: u16,
}

impl TableRegister {
    fn from_raw(raw: [u8; 8]) -> Self {
        Self {
            limit: u16::from_le_bytes([raw[0], raw[1]]),
            base: u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]]),
        }
    }
}

/// A legacy-mode segment descriptor, decoded (Intel SDM vol. 3, 3.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentDescriptor {
    /// Base address.
    pub base: u32,
    /// Limit in bytes (scaled by 4 KiB when `g` is set).
    pub limit: u32,
    /// Type field (4 bits).
    pub type_: u8,
    /// S: code/data (true) or system (false).
    pub s: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Present.
    pub present: bool,
    /// L: 64-bit code.
    pub l: bool,
    /// D/B: 32-bit default operand size / stack.
    pub db: bool,
    /// G: limit in 4 KiB units.
    pub g: bool,
}

/// Type bit: executable (code) segment.
const TYPE_CODE: u8 = 0x8;
/// Type bit: expand-down (data) / conforming (code).
const TYPE_EXPAND_DOWN: u8 = 0x4;
/// Type bit: writable (data) / readable (code).
const TYPE_RW: u8 = 0x2;
/// System type: busy 32-bit TSS.
pub const TSS32_BUSY: u8 = 0xb;

impl SegmentDescriptor {
    /// Decodes the 8-byte descriptor `raw` (little-endian word).
    pub const fn decode(raw: u64) -> Self {
        let raw_limit = ((raw & 0xffff) | ((raw >> 32) & 0xf_0000)) as u32;
        let g = raw & (1 << 55) != 0;
        Self {
            base: (((raw >> 16) & 0xff_ffff) | ((raw >> 32) & 0xff00_0000)) as u32,
            limit: if g {
                (raw_limit << 12) | 0xfff
            } else {
                raw_limit
            },
            type_: ((raw >> 40) & 0xf) as u8,
            s: raw & (1 << 44) != 0,
            dpl: ((raw >> 45) & 3) as u8,
            present: raw & (1 << 47) != 0,
            l: raw & (1 << 53) != 0,
            db: raw & (1 << 54) != 0,
            g,
        }
    }
}

impl core::fmt::Display for SegmentDescriptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "base={:#x},limit={:#x},type={:#x},s={},dpl={},p={},l={},db={},g={}",
            self.base,
            self.limit,
            self.type_,
            u8::from(self.s),
            self.dpl,
            u8::from(self.present),
            u8::from(self.l),
            u8::from(self.db),
            u8::from(self.g)
        )
    }
}

/// Why a selector's descriptor cannot be read from the recorded GDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInGdt {
    /// A null selector (index 0) names no descriptor.
    Null,
    /// The selector's TI bit names the LDT.
    Ldt,
    /// The descriptor lies past the GDT's limit.
    PastLimit {
        /// GDTR limit.
        limit: u16,
    },
    /// The descriptor lies past the bytes the entry code copied.
    PastCopy,
}

impl core::fmt::Display for NotInGdt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Null => f.write_str("null selector"),
            Self::Ldt => f.write_str("LDT selector"),
            Self::PastLimit { limit } => write!(f, "past the GDT limit {limit:#x}"),
            Self::PastCopy => write!(f, "past the {GDT_COPY_LEN} bytes of GDT recorded"),
        }
    }
}

/// The segment registers the checks look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegReg {
    /// CS.
    Cs,
    /// DS.
    Ds,
    /// ES.
    Es,
    /// SS.
    Ss,
    /// TR.
    Tr,
}

impl SegReg {
    /// Lower-case register name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cs => "cs",
            Self::Ds => "ds",
            Self::Es => "es",
            Self::Ss => "ss",
            Self::Tr => "tr",
        }
    }
}

impl EntryState {
    /// An empty record (what the runtime's static holds before the entry
    /// code runs).
    pub const ZERO: Self = Self {
        magic: 0,
        eflags: 0,
        cr0: 0,
        cr3: 0,
        cr4: 0,
        ebx: 0,
        efer: 0,
        esp: 0,
        eip: 0,
        eip_linked: 0,
        bss_first_nonzero: 0,
        es_canary: 0,
        ss_canary: 0,
        cs: 0,
        ds: 0,
        es: 0,
        ss: 0,
        fs: 0,
        gs: 0,
        tr: 0,
        ldtr: 0,
        gdtr: [0; 8],
        idtr: [0; 8],
        gdt_len: 0,
        scratch: [0; 5],
        gdt: [0; GDT_COPY_LEN],
    };

    /// Whether the entry code filled the record (it writes the magic last,
    /// through DS).
    pub fn captured(&self) -> bool {
        self.magic == ENTRY_STATE_MAGIC
    }

    /// GDTR.
    pub fn gdtr(&self) -> TableRegister {
        TableRegister::from_raw(self.gdtr)
    }

    /// IDTR.
    pub fn idtr(&self) -> TableRegister {
        TableRegister::from_raw(self.idtr)
    }

    /// The selector in `reg`.
    pub fn selector(&self, reg: SegReg) -> u16 {
        match reg {
            SegReg::Cs => self.cs,
            SegReg::Ds => self.ds,
            SegReg::Es => self.es,
            SegReg::Ss => self.ss,
            SegReg::Tr => self.tr,
        }
    }

    /// The descriptor `selector` names in the recorded GDT.
    pub fn descriptor(&self, selector: u16) -> Result<SegmentDescriptor, NotInGdt> {
        if selector & 4 != 0 {
            return Err(NotInGdt::Ldt);
        }
        let at = usize::from(selector & !7);
        if at == 0 {
            return Err(NotInGdt::Null);
        }
        let limit = self.gdtr().limit;
        if at + 7 > usize::from(limit) {
            return Err(NotInGdt::PastLimit { limit });
        }
        let copied = (self.gdt_len as usize).min(GDT_COPY_LEN);
        if at + 8 > copied {
            return Err(NotInGdt::PastCopy);
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.gdt[at..at + 8]);
        Ok(SegmentDescriptor::decode(u64::from_le_bytes(word)))
    }

    /// The descriptor `reg`'s selector names.
    pub fn segment(&self, reg: SegReg) -> Result<SegmentDescriptor, NotInGdt> {
        self.descriptor(self.selector(reg))
    }
}

/// CR0.PE.
pub const CR0_PE: u32 = 1 << 0;
/// CR0.ET: hard-wired to 1 on every CPU since the i486 (not writable).
pub const CR0_ET: u32 = 1 << 4;
/// EFLAGS.TF.
pub const EFLAGS_TF: u32 = 1 << 8;
/// EFLAGS.IF.
pub const EFLAGS_IF: u32 = 1 << 9;
/// EFLAGS.VM.
pub const EFLAGS_VM: u32 = 1 << 17;

/// Names of the CR0 bits a PVH entry must leave clear, for notes.
pub const CR0_BITS: [(u32, &str); 10] = [
    (1 << 1, "MP"),
    (1 << 2, "EM"),
    (1 << 3, "TS"),
    (1 << 5, "NE"),
    (1 << 16, "WP"),
    (1 << 18, "AM"),
    (1 << 29, "NW"),
    (1 << 30, "CD"),
    (1 << 31, "PG"),
    (!0xe005_003f, "reserved"),
];

/// What is wrong with a code or data descriptor for a flat 32-bit segment,
/// if anything: `code` selects the code-segment rules.
pub fn flat32_problem(d: &SegmentDescriptor, code: bool) -> Option<&'static str> {
    Some(if !d.present {
        "not present"
    } else if !d.s {
        "a system descriptor"
    } else if code && d.type_ & TYPE_CODE == 0 {
        "not a code segment"
    } else if code && d.type_ & TYPE_RW == 0 {
        "code not readable"
    } else if code && d.dpl != 0 {
        "DPL is not 0"
    } else if !code && d.type_ & TYPE_CODE != 0 {
        "not a data segment"
    } else if !code && d.type_ & TYPE_RW == 0 {
        "not writable"
    } else if !code && d.type_ & TYPE_EXPAND_DOWN != 0 {
        "expand-down"
    } else if d.l {
        "64-bit (L set)"
    } else if !d.db {
        "16-bit (D/B clear)"
    } else if d.base != 0 {
        "base is not 0"
    } else if d.limit != u32::MAX {
        "limit is not 0xffffffff"
    } else {
        return None;
    })
}

/// What is wrong with a TR descriptor, if anything: PVH wants an active
/// (busy) 32-bit TSS, base 0, limit 0x67.
pub fn tss_problem(d: &SegmentDescriptor) -> Option<&'static str> {
    Some(if !d.present {
        "not present"
    } else if d.s {
        "not a system descriptor"
    } else if d.type_ != TSS32_BUSY {
        "not a busy 32-bit TSS (type 0xb)"
    } else if d.base != 0 {
        "base is not 0"
    } else if d.limit != 0x67 {
        "limit is not 0x67"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptor words as Firecracker, Cloud Hypervisor and pvh write them
    /// (values from their sources, not from the decoder).
    const CODE32: u64 = 0x00cf_9b00_0000_ffff;
    const DATA32: u64 = 0x00cf_9300_0000_ffff;
    const TSS: u64 = 0x0000_8b00_0000_0067;

    fn state_with_gdt(words: &[u64]) -> EntryState {
        let mut s = EntryState::ZERO;
        for (i, w) in words.iter().enumerate() {
            s.gdt[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        let len = words.len() * 8;
        s.gdt_len = len as u32;
        s.gdtr[..2].copy_from_slice(&((len - 1) as u16).to_le_bytes());
        s.gdtr[2..6].copy_from_slice(&0x500u32.to_le_bytes());
        s
    }

    #[test]
    fn decodes_the_flat_descriptors_every_vmm_uses() {
        let cs = SegmentDescriptor::decode(CODE32);
        assert_eq!(
            cs,
            SegmentDescriptor {
                base: 0,
                limit: 0xffff_ffff,
                type_: 0xb,
                s: true,
                dpl: 0,
                present: true,
                l: false,
                db: true,
                g: true
            }
        );
        assert_eq!(flat32_problem(&cs, true), None);
        assert_eq!(flat32_problem(&cs, false), Some("not a data segment"));
        let ds = SegmentDescriptor::decode(DATA32);
        assert_eq!(flat32_problem(&ds, false), None);
        assert_eq!(flat32_problem(&ds, true), Some("not a code segment"));
        let tr = SegmentDescriptor::decode(TSS);
        assert_eq!((tr.base, tr.limit, tr.type_, tr.s), (0, 0x67, 0xb, false));
        assert_eq!(tss_problem(&tr), None);
        assert_eq!(
            cs.to_string(),
            "base=0x0,limit=0xffffffff,type=0xb,s=1,dpl=0,p=1,l=0,db=1,g=1"
        );
    }

    #[test]
    fn each_defect_of_a_segment_is_named() {
        // 64-bit code, 16-bit data, byte-granular limit, a base, DPL 3,
        // an available (not busy) TSS, an expand-down data segment.
        let cases: [(u64, bool, &str); 7] = [
            (0x00af_9b00_0000_ffff, true, "64-bit (L set)"),
            (0x008f_9300_0000_ffff, false, "16-bit (D/B clear)"),
            (0x0040_9300_0000_ffff, false, "limit is not 0xffffffff"),
            (0x00cf_9301_0000_ffff, false, "base is not 0"),
            (0x00cf_fb00_0000_ffff, true, "DPL is not 0"),
            (0x00cf_9700_0000_ffff, false, "expand-down"),
            (0x00cf_1b00_0000_ffff, true, "not present"),
        ];
        for (word, code, why) in cases {
            let d = SegmentDescriptor::decode(word);
            assert_eq!(flat32_problem(&d, code), Some(why), "{word:#x}");
        }
        let available = SegmentDescriptor::decode(0x0000_8900_0000_0067);
        assert_eq!(
            tss_problem(&available),
            Some("not a busy 32-bit TSS (type 0xb)")
        );
        let long = SegmentDescriptor::decode(0x0000_8b00_0000_ffff);
        assert_eq!(tss_problem(&long), Some("limit is not 0x67"));
    }

    #[test]
    fn descriptors_come_from_the_recorded_gdt_only_when_visible() {
        let mut s = state_with_gdt(&[0, CODE32, DATA32, TSS]);
        s.cs = 0x08;
        s.ds = 0x10;
        s.tr = 0x18;
        s.ss = 0x13; // RPL 3 of the data descriptor
        assert_eq!(s.segment(SegReg::Cs), Ok(SegmentDescriptor::decode(CODE32)));
        assert_eq!(s.segment(SegReg::Ds), Ok(SegmentDescriptor::decode(DATA32)));
        assert_eq!(s.segment(SegReg::Ss), Ok(SegmentDescriptor::decode(DATA32)));
        assert_eq!(s.segment(SegReg::Tr), Ok(SegmentDescriptor::decode(TSS)));
        assert_eq!(s.segment(SegReg::Es), Err(NotInGdt::Null));
        assert_eq!(s.descriptor(0x0c), Err(NotInGdt::Ldt));
        assert_eq!(s.descriptor(0x20), Err(NotInGdt::PastLimit { limit: 0x1f }));
        // A GDT larger than what was copied.
        s.gdtr[..2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(s.descriptor(0x100), Err(NotInGdt::PastCopy));
        assert_eq!(
            s.gdtr(),
            TableRegister {
                base: 0x500,
                limit: 0xffff
            }
        );
        // Xen: no GDT at all.
        let x = EntryState::ZERO;
        assert_eq!(x.descriptor(0x08), Err(NotInGdt::PastLimit { limit: 0 }));
    }
}
