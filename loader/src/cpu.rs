//! The boot vCPU's initial state as plain data (no KVM types), for the two
//! entries the loader supports, and (feature `kvm`) its conversion to
//! `kvm_regs` / `kvm_sregs`.
//!
//! Only the boot vCPU needs this state: Linux starts application
//! processors itself through the local APIC.

use crate::gdt;

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type (read-only 1 on modern CPUs; Xen and Firecracker
/// set it).
pub const CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required for long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS with only the always-one bit 1 set: IF, TF and VM clear.
pub const RFLAGS_BOOT: u64 = 1 << 1;

/// Which entry protocol the state is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// The PVH entry: 32-bit protected mode, paging off, EBX = start_info.
    Protected32,
    /// The Linux 64-bit boot protocol: long mode with identity paging,
    /// RSI = zero page.
    Long64,
}

/// A segment register's selector and hidden part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled when `g` is set).
    pub limit: u32,
    /// Descriptor type (4 bits).
    pub type_: u8,
    /// Present.
    pub present: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Default operand size 32 bits.
    pub db: bool,
    /// Code/data (true) or system (false) descriptor.
    pub s: bool,
    /// 64-bit code segment.
    pub l: bool,
    /// Page granularity.
    pub g: bool,
}

/// A descriptor table register (GDTR or IDTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorTable {
    /// Guest-physical base (paging is off or identity-mapped at entry).
    pub base: u64,
    /// Limit: size in bytes minus one.
    pub limit: u16,
}

/// The boot vCPU's initial registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuState {
    /// Entry protocol.
    pub mode: EntryMode,
    /// Instruction pointer: the entry point.
    pub rip: u64,
    /// Stack pointer (PVH gives no stack: 0).
    pub rsp: u64,
    /// PVH: the start_info address.
    pub rbx: u64,
    /// Linux 64-bit: the zero page address.
    pub rsi: u64,
    /// Flags: bit 1 only.
    pub rflags: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3 (page-table root; 0 without paging).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// Code segment.
    pub cs: Segment,
    /// Data segment.
    pub ds: Segment,
    /// Extra segment.
    pub es: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// Stack segment.
    pub ss: Segment,
    /// Task register.
    pub tr: Segment,
    /// GDTR: the boot GDT the loader wrote.
    pub gdt: DescriptorTable,
    /// IDTR: an empty IDT the loader wrote.
    pub idt: DescriptorTable,
}

impl CpuState {
    /// The PVH entry state (Xen `docs/misc/pvh.pandoc`): CR0 = PE|ET,
    /// CR4 = EFER = 0, flat 32-bit CS (0x08) and DS/ES/FS/GS/SS (0x10), a
    /// busy 32-bit TSS in TR (0x18, base 0, limit 0x67), RFLAGS = 2,
    /// EBX = `start_info`, EIP = `entry`. `gdt` is where
    /// [`gdt::PVH_GDT`] was written, `idt` where the empty IDT was.
    pub fn pvh(entry: u64, start_info: u64, gdt: u64, idt: u64) -> Self {
        let data = gdt::segment(gdt::pvh::DS, gdt::DATA);
        Self {
            mode: EntryMode::Protected32,
            rip: entry,
            rsp: 0,
            rbx: start_info,
            rsi: 0,
            rflags: RFLAGS_BOOT,
            cr0: CR0_PE | CR0_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            cs: gdt::segment(gdt::pvh::CS, gdt::CODE32),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            tr: gdt::segment(gdt::pvh::TR, gdt::TSS_BUSY),
            gdt: DescriptorTable {
                base: gdt,
                limit: (gdt::PVH_GDT.len() * 8 - 1) as u16,
            },
            idt: DescriptorTable {
                base: idt,
                limit: (gdt::IDT_SIZE - 1) as u16,
            },
        }
    }

    /// The Linux 64-bit boot protocol state (`Documentation/arch/x86/boot.rst`):
    /// long mode (CR0 = PE|PG|ET, CR4 = PAE, EFER = LME|LMA, CR3 =
    /// `page_tables`), CS = 0x10 (64-bit code), DS/ES/FS/GS/SS = 0x18,
    /// interrupts off, RSI = `zero_page`, RIP = `entry` (load address +
    /// 0x200), RSP = `stack` (top of a small boot stack).
    pub fn long64(
        entry: u64,
        zero_page: u64,
        page_tables: u64,
        stack: u64,
        gdt: u64,
        idt: u64,
    ) -> Self {
        let data = gdt::segment(gdt::long64::DS, gdt::DATA);
        Self {
            mode: EntryMode::Long64,
            rip: entry,
            rsp: stack,
            rbx: 0,
            rsi: zero_page,
            rflags: RFLAGS_BOOT,
            cr0: CR0_PE | CR0_PG | CR0_ET,
            cr3: page_tables,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA,
            cs: gdt::segment(gdt::long64::CS, gdt::CODE64),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            tr: gdt::segment(gdt::long64::TR, gdt::TSS_BUSY),
            gdt: DescriptorTable {
                base: gdt,
                limit: (gdt::LONG64_GDT.len() * 8 - 1) as u16,
            },
            idt: DescriptorTable {
                base: idt,
                limit: (gdt::IDT_SIZE - 1) as u16,
            },
        }
    }
}

#[cfg(feature = "kvm")]
mod kvm {
    use super::{CpuState, DescriptorTable, Segment};
    use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};

    impl From<&Segment> for kvm_segment {
        fn from(s: &Segment) -> Self {
            kvm_segment {
                base: s.base,
                limit: s.limit,
                selector: s.selector,
                type_: s.type_,
                present: u8::from(s.present),
                dpl: s.dpl,
                db: u8::from(s.db),
                s: u8::from(s.s),
                l: u8::from(s.l),
                g: u8::from(s.g),
                avl: 0,
                unusable: u8::from(!s.present),
                padding: 0,
            }
        }
    }

    impl From<&DescriptorTable> for kvm_dtable {
        fn from(t: &DescriptorTable) -> Self {
            kvm_dtable {
                base: t.base,
                limit: t.limit,
                padding: [0; 3],
            }
        }
    }

    impl CpuState {
        /// Writes this state into `regs` (all general registers replaced)
        /// and `sregs` (segments, descriptor tables, CR0/3/4 and EFER
        /// replaced; CR2, CR8, APIC base, LDT and the interrupt bitmap
        /// kept as read from KVM).
        pub fn to_kvm(&self, regs: &mut kvm_regs, sregs: &mut kvm_sregs) {
            *regs = kvm_regs {
                rip: self.rip,
                rsp: self.rsp,
                rbx: self.rbx,
                rsi: self.rsi,
                rflags: self.rflags,
                ..Default::default()
            };
            sregs.cs = (&self.cs).into();
            sregs.ds = (&self.ds).into();
            sregs.es = (&self.es).into();
            sregs.fs = (&self.fs).into();
            sregs.gs = (&self.gs).into();
            sregs.ss = (&self.ss).into();
            sregs.tr = (&self.tr).into();
            sregs.gdt = (&self.gdt).into();
            sregs.idt = (&self.idt).into();
            sregs.cr0 = self.cr0;
            sregs.cr3 = self.cr3;
            sregs.cr4 = self.cr4;
            sregs.efer = self.efer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvh_state_follows_the_abi() {
        let s = CpuState::pvh(0x100_0000, 0x6000, 0x500, 0x540);
        assert_eq!(s.mode, EntryMode::Protected32);
        assert_eq!((s.rip, s.rbx, s.rsp, s.rflags), (0x100_0000, 0x6000, 0, 2));
        assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x11, 0, 0, 0));
        assert_eq!(
            (s.cs.selector, s.cs.type_, s.cs.db, s.cs.l),
            (0x08, 0xb, true, false)
        );
        assert_eq!(
            (s.cs.base, s.cs.limit, s.cs.s, s.cs.present),
            (0, 0xffff_ffff, true, true)
        );
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!((seg.selector, seg.type_, seg.db), (0x10, 0x3, true));
            assert_eq!((seg.base, seg.limit, seg.g), (0, 0xffff_ffff, true));
        }
        assert_eq!((s.tr.selector, s.tr.type_, s.tr.s), (0x18, 0xb, false));
        assert_eq!((s.tr.base, s.tr.limit, s.tr.present), (0, 0x67, true));
        assert_eq!((s.gdt.base, s.gdt.limit), (0x500, 31));
        assert_eq!((s.idt.base, s.idt.limit), (0x540, 7));
    }

    #[test]
    fn long64_state_follows_the_boot_protocol() {
        let s = CpuState::long64(0x100_0200, 0x7000, 0x9000, 0x8ff0, 0x500, 0x540);
        assert_eq!(s.mode, EntryMode::Long64);
        assert_eq!(
            (s.rip, s.rsi, s.rbx, s.rsp),
            (0x100_0200, 0x7000, 0, 0x8ff0)
        );
        assert_eq!(s.rflags, 2);
        assert_eq!(s.cr0, 0x8000_0011);
        assert_eq!((s.cr3, s.cr4, s.efer), (0x9000, 0x20, 0x500));
        assert_eq!(
            (s.cs.selector, s.cs.l, s.cs.db, s.cs.type_),
            (0x10, true, false, 0xb)
        );
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!((seg.selector, seg.type_), (0x18, 0x3));
        }
        assert_eq!((s.tr.selector, s.tr.type_, s.tr.limit), (0x20, 0xb, 0x67));
        assert_eq!(s.gdt.limit, 47);
    }

    #[cfg(feature = "kvm")]
    #[test]
    fn kvm_conversion_pins_values() {
        use kvm_bindings::{kvm_regs, kvm_sregs};
        let s = CpuState::pvh(0x1234, 0x6000, 0x500, 0x540);
        let mut regs = kvm_regs {
            rax: 99,
            ..Default::default()
        };
        let mut sregs = kvm_sregs {
            apic_base: 0xfee0_0900,
            ..Default::default()
        };
        s.to_kvm(&mut regs, &mut sregs);
        assert_eq!(
            (regs.rip, regs.rbx, regs.rflags, regs.rax),
            (0x1234, 0x6000, 2, 0)
        );
        assert_eq!(sregs.apic_base, 0xfee0_0900);
        assert_eq!((sregs.cr0, sregs.cr4, sregs.efer), (0x11, 0, 0));
        let cs = sregs.cs;
        assert_eq!(
            (
                cs.base,
                cs.limit,
                cs.selector,
                cs.type_,
                cs.present,
                cs.dpl,
                cs.db,
                cs.s,
                cs.l,
                cs.g,
                cs.unusable
            ),
            (0, 0xffff_ffff, 0x08, 0xb, 1, 0, 1, 1, 0, 1, 0)
        );
        let ss = sregs.ss;
        assert_eq!(
            (ss.selector, ss.type_, ss.db, ss.s, ss.g),
            (0x10, 3, 1, 1, 1)
        );
        let tr = sregs.tr;
        assert_eq!(
            (tr.selector, tr.type_, tr.limit, tr.s, tr.present, tr.g),
            (0x18, 0xb, 0x67, 0, 1, 0)
        );
        assert_eq!((sregs.gdt.base, sregs.gdt.limit), (0x500, 31));
        assert_eq!((sregs.idt.base, sregs.idt.limit), (0x540, 7));

        let l = CpuState::long64(0x10_0200, 0x7000, 0x9000, 0x8ff0, 0x500, 0x540);
        l.to_kvm(&mut regs, &mut sregs);
        assert_eq!(
            (regs.rip, regs.rsi, regs.rsp, regs.rbx),
            (0x10_0200, 0x7000, 0x8ff0, 0)
        );
        assert_eq!(
            (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer),
            (0x8000_0011, 0x9000, 0x20, 0x500)
        );
        assert_eq!((sregs.cs.selector, sregs.cs.l, sregs.cs.db), (0x10, 1, 0));
        assert_eq!((sregs.ds.selector, sregs.tr.selector), (0x18, 0x20));
    }
}
