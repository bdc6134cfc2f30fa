//! The MP table (Intel MultiProcessor Specification 1.4): the pre-ACPI
//! description of the same platform the MADT describes, one processor
//! entry per vCPU, the IOAPIC, the ISA bus and its interrupts.
//!
//! Why a PVH guest gets one: Linux looks for an MP floating pointer on
//! every boot, ACPI or not (`find_smp_config`, before it reads the MADT),
//! and without one it scans the whole BIOS area's upper 64 KiB, 16 bytes
//! at a time, in vain: about 37 ms of a nested boot (docs/benchmarks.md).
//! Firecracker, Cloud Hypervisor and SeaBIOS all write one. It also gives
//! a guest booted with `acpi=off` (or an OS that knows no ACPI) its CPUs
//! and interrupt routing.
//!
//! What it says agrees with [`crate::build`]'s MADT, from the same
//! constants: local APIC IDs `0..cpus` at [`LAPIC_ADDR`], CPU 0 the boot
//! processor; IOAPIC [`IOAPIC_ID`] at [`IOAPIC_ADDR`]; ISA IRQ `n` on
//! IOAPIC pin `n` (KVM's default routing, and the MADT has no interrupt
//! source override), IRQ 2 (the PIC cascade) left out; ExtINT on every
//! local APIC's LINT0 and NMI on LINT1 (virtual wire mode: the floating
//! pointer's IMCR bit is clear).
//!
//! The structures are Linux's `arch/x86/include/asm/mpspec_def.h` layouts,
//! checked against that header by `tests/tests/c_headers.rs`.
//!
//! ```
//! use pvh_acpi::mptable::{self, MpfIntel};
//! let table = mptable::build(0xf_0000, 2)?;
//! assert_eq!(&table.bytes[..4], b"_MP_");
//! assert_eq!(table.bytes.iter().take(16).fold(0u8, |a, b| a.wrapping_add(*b)), 0);
//! # Ok::<(), pvh_acpi::AcpiError>(())
//! ```

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{AcpiError, IOAPIC_ADDR, IOAPIC_ID, LAPIC_ADDR, MAX_CPUS};
use pvh_entry::acpi::rsdp::byte_sum;
use pvh_entry::machine::ONE_MIB;

/// The floating pointer's signature.
pub const MPF_SIGNATURE: [u8; 4] = *b"_MP_";
/// The configuration table's signature (`MPC_SIGNATURE`).
pub const MPC_SIGNATURE: [u8; 4] = *b"PCMP";
/// Specification revision 1.4.
pub const SPEC_1_4: u8 = 4;
/// Entry type of a processor (`MP_PROCESSOR`).
pub const MP_PROCESSOR: u8 = 0;
/// Entry type of a bus (`MP_BUS`).
pub const MP_BUS: u8 = 1;
/// Entry type of an IOAPIC (`MP_IOAPIC`).
pub const MP_IOAPIC: u8 = 2;
/// Entry type of an I/O interrupt assignment (`MP_INTSRC`).
pub const MP_INTSRC: u8 = 3;
/// Entry type of a local interrupt assignment (`MP_LINTSRC`).
pub const MP_LINTSRC: u8 = 4;
/// `mpc_cpu.cpuflag`: the processor is usable (`CPU_ENABLED`).
pub const CPU_ENABLED: u8 = 1;
/// `mpc_cpu.cpuflag`: the boot processor (`CPU_BOOTPROCESSOR`).
pub const CPU_BOOTPROCESSOR: u8 = 2;
/// `mpc_ioapic.flags`: the IOAPIC is usable (`MPC_APIC_USABLE`).
pub const MPC_APIC_USABLE: u8 = 1;
/// Interrupt type: a vectored interrupt (`mp_INT`).
pub const MP_INT: u8 = 0;
/// Interrupt type: NMI (`mp_NMI`).
pub const MP_NMI: u8 = 1;
/// Interrupt type: external (8259) interrupt (`mp_ExtINT`).
pub const MP_EXTINT: u8 = 3;
/// Destination "every local APIC" (`MP_APIC_ALL`).
pub const MP_APIC_ALL: u8 = 0xff;
/// Local APIC version KVM's local APICs report (an integrated APIC).
pub const LAPIC_VERSION: u8 = 0x14;
/// IOAPIC version KVM's in-kernel IOAPIC reports.
pub const IOAPIC_VERSION: u8 = 0x11;
/// `mpc_cpu.cpufeature`: the CPU signature (family 6, model 0, stepping
/// 0). The guest's CPUID is the authority; Linux reads this field only to
/// print it.
pub const CPU_SIGNATURE: u32 = 0x600;
/// `mpc_cpu.featureflag`: CPUID.1:EDX bits FPU (0) and APIC (9).
pub const CPU_FEATURES: u32 = 1 | 1 << 9;
/// The one bus: ISA, ID 0.
pub const ISA_BUS_ID: u8 = 0;
/// ISA IRQs, each on the IOAPIC pin of the same number; IRQ 2 is the
/// PIC cascade and never a device's.
pub const ISA_IRQS: [u8; 15] = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// Size of the region the table needs at most (with [`MAX_CPUS`]),
/// rounded up to a page: what the loader's plan reserves.
pub const REGION_SIZE: u64 = 0x1000;

/// The MP floating pointer structure (`struct mpf_intel`), 16 bytes on a
/// 16-byte boundary where the guest scans.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpfIntel {
    /// `_MP_`.
    pub signature: [u8; 4],
    /// Address of the configuration table.
    pub physptr: u32,
    /// Length in 16-byte paragraphs: 1.
    pub length: u8,
    /// Specification revision ([`SPEC_1_4`]).
    pub specification: u8,
    /// Makes the 16 bytes sum to 0.
    pub checksum: u8,
    /// 0: a configuration table is present (not a default configuration).
    pub feature1: u8,
    /// Bit 7: IMCR present (PIC mode); 0 is virtual wire mode.
    pub feature2: u8,
    /// Reserved.
    pub feature3: u8,
    /// Reserved.
    pub feature4: u8,
    /// Reserved.
    pub feature5: u8,
}

/// The configuration table header (`struct mpc_table`); its entries
/// follow it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcTable {
    /// `PCMP`.
    pub signature: [u8; 4],
    /// Bytes of the header and every entry.
    pub length: u16,
    /// Specification revision ([`SPEC_1_4`]).
    pub spec: u8,
    /// Makes `length` bytes sum to 0.
    pub checksum: u8,
    /// OEM ID, space-padded.
    pub oem: [u8; 8],
    /// Product ID, space-padded.
    pub productid: [u8; 12],
    /// OEM table address, 0 if none.
    pub oemptr: u32,
    /// OEM table size, 0 if none.
    pub oemsize: u16,
    /// Number of entries.
    pub oemcount: u16,
    /// Address of the local APICs.
    pub lapic: u32,
    /// Extended table length and checksum (none: 0).
    pub reserved: u32,
}

/// A processor entry (`struct mpc_cpu`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcCpu {
    /// [`MP_PROCESSOR`].
    pub type_: u8,
    /// Local APIC ID.
    pub apicid: u8,
    /// Local APIC version.
    pub apicver: u8,
    /// [`CPU_ENABLED`], [`CPU_BOOTPROCESSOR`].
    pub cpuflag: u8,
    /// CPU signature (stepping, model, family).
    pub cpufeature: u32,
    /// CPUID.1:EDX.
    pub featureflag: u32,
    /// Reserved.
    pub reserved: [u32; 2],
}

/// A bus entry (`struct mpc_bus`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcBus {
    /// [`MP_BUS`].
    pub type_: u8,
    /// Bus ID.
    pub busid: u8,
    /// Bus type, space-padded (`ISA   `).
    pub bustype: [u8; 6],
}

/// An IOAPIC entry (`struct mpc_ioapic`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcIoapic {
    /// [`MP_IOAPIC`].
    pub type_: u8,
    /// IOAPIC ID.
    pub apicid: u8,
    /// IOAPIC version.
    pub apicver: u8,
    /// [`MPC_APIC_USABLE`].
    pub flags: u8,
    /// MMIO address.
    pub apicaddr: u32,
}

/// An I/O interrupt assignment (`struct mpc_intsrc`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcIntsrc {
    /// [`MP_INTSRC`].
    pub type_: u8,
    /// [`MP_INT`] and friends.
    pub irqtype: u8,
    /// Polarity and trigger mode (0: as the bus defines, for ISA active
    /// high, edge).
    pub irqflag: u16,
    /// Source bus ID.
    pub srcbus: u8,
    /// The IRQ on the source bus.
    pub srcbusirq: u8,
    /// Destination IOAPIC ID.
    pub dstapic: u8,
    /// Destination IOAPIC pin.
    pub dstirq: u8,
}

/// A local interrupt assignment (`struct mpc_lintsrc`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MpcLintsrc {
    /// [`MP_LINTSRC`].
    pub type_: u8,
    /// [`MP_EXTINT`], [`MP_NMI`].
    pub irqtype: u8,
    /// Polarity and trigger mode (0: as the bus defines).
    pub irqflag: u16,
    /// Source bus ID.
    pub srcbusid: u8,
    /// The IRQ on the source bus.
    pub srcbusirq: u8,
    /// Destination local APIC ID ([`MP_APIC_ALL`]: every one).
    pub destapic: u8,
    /// Destination LINT pin (0 or 1).
    pub destapiclint: u8,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<MpfIntel>() == 16);
    assert!(offset_of!(MpfIntel, physptr) == 4);
    assert!(offset_of!(MpfIntel, length) == 8);
    assert!(offset_of!(MpfIntel, specification) == 9);
    assert!(offset_of!(MpfIntel, checksum) == 10);
    assert!(offset_of!(MpfIntel, feature1) == 11);
    assert!(offset_of!(MpfIntel, feature2) == 12);
    assert!(offset_of!(MpfIntel, feature5) == 15);
    assert!(size_of::<MpcTable>() == 44);
    assert!(offset_of!(MpcTable, length) == 4);
    assert!(offset_of!(MpcTable, spec) == 6);
    assert!(offset_of!(MpcTable, checksum) == 7);
    assert!(offset_of!(MpcTable, oem) == 8);
    assert!(offset_of!(MpcTable, productid) == 16);
    assert!(offset_of!(MpcTable, oemptr) == 28);
    assert!(offset_of!(MpcTable, oemsize) == 32);
    assert!(offset_of!(MpcTable, oemcount) == 34);
    assert!(offset_of!(MpcTable, lapic) == 36);
    assert!(offset_of!(MpcTable, reserved) == 40);
    assert!(size_of::<MpcCpu>() == 20);
    assert!(offset_of!(MpcCpu, apicid) == 1);
    assert!(offset_of!(MpcCpu, apicver) == 2);
    assert!(offset_of!(MpcCpu, cpuflag) == 3);
    assert!(offset_of!(MpcCpu, cpufeature) == 4);
    assert!(offset_of!(MpcCpu, featureflag) == 8);
    assert!(offset_of!(MpcCpu, reserved) == 12);
    assert!(size_of::<MpcBus>() == 8);
    assert!(offset_of!(MpcBus, busid) == 1);
    assert!(offset_of!(MpcBus, bustype) == 2);
    assert!(size_of::<MpcIoapic>() == 8);
    assert!(offset_of!(MpcIoapic, apicid) == 1);
    assert!(offset_of!(MpcIoapic, apicver) == 2);
    assert!(offset_of!(MpcIoapic, flags) == 3);
    assert!(offset_of!(MpcIoapic, apicaddr) == 4);
    assert!(size_of::<MpcIntsrc>() == 8);
    assert!(offset_of!(MpcIntsrc, irqtype) == 1);
    assert!(offset_of!(MpcIntsrc, irqflag) == 2);
    assert!(offset_of!(MpcIntsrc, srcbus) == 4);
    assert!(offset_of!(MpcIntsrc, srcbusirq) == 5);
    assert!(offset_of!(MpcIntsrc, dstapic) == 6);
    assert!(offset_of!(MpcIntsrc, dstirq) == 7);
    assert!(size_of::<MpcLintsrc>() == 8);
    assert!(offset_of!(MpcLintsrc, irqtype) == 1);
    assert!(offset_of!(MpcLintsrc, irqflag) == 2);
    assert!(offset_of!(MpcLintsrc, srcbusid) == 4);
    assert!(offset_of!(MpcLintsrc, srcbusirq) == 5);
    assert!(offset_of!(MpcLintsrc, destapic) == 6);
    assert!(offset_of!(MpcLintsrc, destapiclint) == 7);
    // The largest table fits the region the plan reserves.
    assert!(table_len(MAX_CPUS) as u64 <= REGION_SIZE);
};

/// Bytes of the floating pointer and the configuration table for `cpus`.
const fn table_len(cpus: u8) -> usize {
    use core::mem::size_of;
    size_of::<MpfIntel>()
        + size_of::<MpcTable>()
        + cpus as usize * size_of::<MpcCpu>()
        + size_of::<MpcBus>()
        + size_of::<MpcIoapic>()
        + ISA_IRQS.len() * size_of::<MpcIntsrc>()
        + 2 * size_of::<MpcLintsrc>()
}

/// The floating pointer and configuration table laid out for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MpTable {
    /// Where `bytes` go: the floating pointer's address.
    pub base: u64,
    /// The floating pointer, then the configuration table.
    pub bytes: Vec<u8>,
}

impl MpTable {
    /// Writes the table into `mem`, after checking that it lies inside
    /// `region` (the loader's MP-table placement).
    pub fn write_to<M: vm_memory::GuestMemory>(
        &self,
        mem: &M,
        region: &core::ops::Range<u64>,
    ) -> Result<(), AcpiError> {
        crate::write_inside(mem, self.base, &self.bytes, region)
    }
}

/// The two's-complement checksum that makes `bytes` sum to 0 (the byte
/// sum is the entry crate's, which checks ACPI tables the same way).
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(byte_sum(bytes))
}

/// Builds the MP table for `cpus` vCPUs with its floating pointer at
/// `base` (16-byte aligned, below 1 MiB where guests scan for it; the
/// configuration table follows it).
pub fn build(base: u64, cpus: u8) -> Result<MpTable, AcpiError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(AcpiError::CpuCount(cpus));
    }
    // Guests look for the floating pointer on 16-byte boundaries below
    // 1 MiB only.
    if base % 16 != 0
        || base
            .checked_add(REGION_SIZE)
            .is_none_or(|end| end > ONE_MIB)
    {
        return Err(AcpiError::MpTableAddress(base));
    }
    // Below 1 MiB, so it fits the 32-bit field.
    let physptr = (base + core::mem::size_of::<MpfIntel>() as u64) as u32;

    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    let mut push = |entry: &[u8]| {
        entries.extend_from_slice(entry);
        count += 1;
    };
    for id in 0..cpus {
        let boot = if id == 0 { CPU_BOOTPROCESSOR } else { 0 };
        push(
            MpcCpu {
                type_: MP_PROCESSOR,
                apicid: id,
                apicver: LAPIC_VERSION,
                cpuflag: CPU_ENABLED | boot,
                cpufeature: CPU_SIGNATURE,
                featureflag: CPU_FEATURES,
                reserved: [0; 2],
            }
            .as_bytes(),
        );
    }
    push(
        MpcBus {
            type_: MP_BUS,
            busid: ISA_BUS_ID,
            bustype: *b"ISA   ",
        }
        .as_bytes(),
    );
    push(
        MpcIoapic {
            type_: MP_IOAPIC,
            apicid: IOAPIC_ID,
            apicver: IOAPIC_VERSION,
            flags: MPC_APIC_USABLE,
            apicaddr: IOAPIC_ADDR,
        }
        .as_bytes(),
    );
    for irq in ISA_IRQS {
        push(
            MpcIntsrc {
                type_: MP_INTSRC,
                irqtype: MP_INT,
                irqflag: 0,
                srcbus: ISA_BUS_ID,
                srcbusirq: irq,
                dstapic: IOAPIC_ID,
                dstirq: irq,
            }
            .as_bytes(),
        );
    }
    for (irqtype, lint) in [(MP_EXTINT, 0), (MP_NMI, 1)] {
        push(
            MpcLintsrc {
                type_: MP_LINTSRC,
                irqtype,
                irqflag: 0,
                srcbusid: ISA_BUS_ID,
                srcbusirq: 0,
                destapic: MP_APIC_ALL,
                destapiclint: lint,
            }
            .as_bytes(),
        );
    }

    let header_len = core::mem::size_of::<MpcTable>();
    let mut header = MpcTable {
        signature: MPC_SIGNATURE,
        // At most 44 + 32 * 20 + 8 + 8 + 15 * 8 + 16 bytes (asserted above).
        length: (header_len + entries.len()) as u16,
        spec: SPEC_1_4,
        checksum: 0,
        oem: *b"PVHVMM  ",
        productid: *b"PVH         ",
        oemptr: 0,
        oemsize: 0,
        oemcount: count,
        lapic: LAPIC_ADDR,
        reserved: 0,
    };
    header.checksum = checksum(header.as_bytes()).wrapping_add(checksum(&entries));

    let mut mpf = MpfIntel {
        signature: MPF_SIGNATURE,
        physptr,
        length: 1,
        specification: SPEC_1_4,
        ..MpfIntel::default()
    };
    mpf.checksum = checksum(mpf.as_bytes());

    let mut bytes = Vec::with_capacity(table_len(cpus));
    bytes.extend_from_slice(mpf.as_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&entries);
    debug_assert_eq!(bytes.len(), table_len(cpus));
    Ok(MpTable { base, bytes })
}

#[cfg(test)]
mod tests {
    //! Decoded by hand from the MP 1.4 offsets (section 4), never with the
    //! structures that wrote them.
    use super::*;

    const BASE: u64 = 0xf_0000;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }
    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn the_floating_pointer_is_valid_and_points_right_after_itself() {
        let t = build(BASE, 1).unwrap();
        let f = &t.bytes[..16];
        assert_eq!(&f[..4], b"_MP_");
        assert_eq!(u32_at(f, 4), 0xf_0010);
        assert_eq!(f[8], 1, "length in paragraphs");
        assert_eq!(f[9], 4, "MP 1.4");
        assert_eq!(sum(f), 0);
        assert_eq!(&f[11..], &[0; 5], "a table is present, virtual wire mode");
    }

    #[test]
    fn the_configuration_table_lists_every_cpu_the_ioapic_and_the_isa_irqs() {
        let cpus = 4;
        let t = build(BASE, cpus).unwrap();
        let c = &t.bytes[16..];
        assert_eq!(&c[..4], b"PCMP");
        let len = usize::from(u16_at(c, 4));
        assert_eq!(len, c.len());
        assert_eq!(c[6], 4);
        assert_eq!(sum(&c[..len]), 0, "table checksum");
        assert_eq!(u32_at(c, 36), 0xfee0_0000, "local APIC address");
        let count = usize::from(u16_at(c, 34));
        // 4 CPUs, 1 bus, 1 IOAPIC, 15 ISA IRQs, 2 local interrupts.
        assert_eq!(count, 4 + 1 + 1 + 15 + 2);

        let mut off = 44;
        let mut cpu_ids = Vec::new();
        let mut routes = Vec::new();
        let mut lints = Vec::new();
        for _ in 0..count {
            let e = &c[off..];
            match e[0] {
                0 => {
                    cpu_ids.push(e[1]);
                    assert_eq!(e[3] & 1, 1, "enabled");
                    assert_eq!(e[3] & 2 != 0, e[1] == 0, "only CPU 0 boots");
                    off += 20;
                }
                1 => {
                    assert_eq!(&e[1..8], b"\0ISA   ");
                    off += 8;
                }
                2 => {
                    assert_eq!(e[1], 0, "IOAPIC ID");
                    assert_eq!(e[3], 1, "usable");
                    assert_eq!(u32_at(e, 4), 0xfec0_0000);
                    off += 8;
                }
                3 => {
                    assert_eq!((e[1], u16_at(e, 2), e[4], e[6]), (0, 0, 0, 0));
                    routes.push((e[5], e[7]));
                    off += 8;
                }
                4 => {
                    lints.push((e[1], e[6], e[7]));
                    off += 8;
                }
                t => panic!("entry type {t} at {off}"),
            }
        }
        assert_eq!(off, len);
        assert_eq!(cpu_ids, [0, 1, 2, 3]);
        let irqs: Vec<u8> = (0..16).filter(|&i| i != 2).collect();
        assert_eq!(routes, irqs.iter().map(|&i| (i, i)).collect::<Vec<_>>());
        assert_eq!(lints, [(3, 0xff, 0), (1, 0xff, 1)]);
    }

    #[test]
    fn the_largest_table_fits_its_region_and_bad_counts_are_refused() {
        let t = build(BASE, MAX_CPUS).unwrap();
        assert!(t.bytes.len() as u64 <= REGION_SIZE);
        assert_eq!(build(BASE, 0), Err(AcpiError::CpuCount(0)));
        assert_eq!(build(BASE, 33), Err(AcpiError::CpuCount(33)));
        for bad in [BASE + 8, 0xf_fff0, 0xffff_fff0, u64::MAX - 15] {
            assert_eq!(
                build(bad, 1),
                Err(AcpiError::MpTableAddress(bad)),
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn write_to_refuses_a_region_the_table_does_not_fit() {
        let mem = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(
            vm_memory::GuestAddress(0),
            0x10_0000,
        )])
        .unwrap();
        let t = build(BASE, 2).unwrap();
        assert!(matches!(
            t.write_to(&mem, &(BASE..BASE + 0x10)),
            Err(AcpiError::DoesNotFit { .. })
        ));
        t.write_to(&mem, &(BASE..BASE + REGION_SIZE)).unwrap();
        let mut back = vec![0; t.bytes.len()];
        vm_memory::Bytes::read_slice(&mem, &mut back, vm_memory::GuestAddress(BASE)).unwrap();
        assert_eq!(back, t.bytes);
    }
}
