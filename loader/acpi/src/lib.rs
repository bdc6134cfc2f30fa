//! ACPI tables for PVH guests: RSDP, XSDT, a hardware-reduced FADT, a DSDT
//! (power-off plus whatever devices the platform describes) and a MADT
//! with one local APIC per vCPU plus the IOAPIC, built with rust-vmm's
//! `acpi_tables` crate and laid out in one contiguous region the loader's
//! plan reserves (start_info's `rsdp_paddr` points at its start); and
//! ([`mptable`]) the MP table describing the same CPUs and IOAPIC, for
//! guests that look for one (Linux does on every boot).
//!
//! The tables come from a [`Platform`]: a description in which each device
//! model supplies its own DSDT node (AML bytes; [`isa`] builds the common
//! ISA ones from the device's own ports and GSI), so this crate knows no
//! device of any VMM, and a VMM's device code never imports the table
//! builder's internals. Xen's libacpi is the model: a toolstack library,
//! apart from the hypervisor.
//!
//! Power-off: the FADT's sleep control register is an I/O port the VMM
//! watches ([`SLEEP_CONTROL_PORT`]); Linux writes `SLP_TYP(S5) | SLP_EN`
//! there on `poweroff` ([`is_poweroff`]), which the VMM turns into a clean
//! exit. The port and the `_S5_` type follow Cloud Hypervisor's choice, so
//! guests that know one know the other.
//!
//! ```
//! use pvh_acpi::{Platform, isa};
//! let platform = Platform::new()
//!     .device(isa::uart("COM1", 0x3f8, 8, 4))
//!     .device(isa::rtc(0x70, 2, 8))
//!     .century(0x32);
//! let tables = platform.build(0xe_0000, 2)?;
//! assert_eq!(tables.rsdp_addr(), 0xe_0000);
//! assert_eq!(&tables.bytes[..8], b"RSD PTR ");
//! # Ok::<(), pvh_acpi::AcpiError>(())
//! ```

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, aml};

pub mod isa;
pub mod mptable;

/// OEM ID in every table.
pub const OEM_ID: [u8; 6] = *b"PVHVMM";
/// OEM table ID in every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"PVHTABLE";
/// I/O port of the FADT's sleep control and status registers (the machine
/// contract's).
pub use pvh_entry::machine::SLEEP_CONTROL_PORT;
/// The `SLP_TYP` value the DSDT's `_S5_` object gives for soft-off.
pub const S5_SLEEP_TYPE: u8 = 5;
/// `SLP_EN` in the sleep control register (ACPI 6.x, 4.8.3.7).
pub const SLEEP_ENABLE: u8 = 1 << 5;
/// Physical address of the IOAPIC (the x86 default, where KVM's in-kernel
/// IOAPIC answers): the machine contract's, as the MADT's 32-bit field.
pub const IOAPIC_ADDR: u32 = pvh_entry::machine::IOAPIC_ADDR as u32;
/// The IOAPIC's ID in the MADT and the MP table (the machine contract's).
pub use pvh_entry::machine::IOAPIC_ID;
/// Physical address of the local APICs (the machine contract's).
pub const LAPIC_ADDR: u32 = pvh_entry::machine::LAPIC_ADDR as u32;
/// Most vCPUs the tables describe (the `--cpus` limit).
pub const MAX_CPUS: u8 = 32;
/// Size of the region the tables need at most (with `MAX_CPUS`), rounded
/// up to a page: what the loader's plan reserves.
pub const REGION_SIZE: u64 = 0x1000;

/// Why tables cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcpiError {
    /// The platform's tables (with its devices' AML) are larger than
    /// [`REGION_SIZE`].
    #[error("the ACPI tables need {len:#x} bytes; the region holds {max:#x}")]
    TooLarge {
        /// Bytes the tables need.
        len: u64,
        /// [`REGION_SIZE`].
        max: u64,
    },
    /// The vCPU count is outside 1..=32.
    #[error("{0} vCPUs requested; ACPI tables describe 1 to {MAX_CPUS}")]
    CpuCount(u8),
    /// The region would cross 4 GiB (the FADT's DSDT pointer is 64-bit, but
    /// the RSDP must be reachable by 32-bit guest code).
    #[error("ACPI region at {0:#x} is not below 4 GiB")]
    RegionTooHigh(u64),
    /// The tables do not fit the region the loader's plan reserved.
    #[error("tables at {base:#x} ({len:#x} bytes) do not fit the region {start:#x}..{end:#x}")]
    DoesNotFit {
        /// Where the tables start.
        base: u64,
        /// Their length.
        len: u64,
        /// Region start.
        start: u64,
        /// Region end.
        end: u64,
    },
    /// The MP floating pointer cannot go there: guests find it only on a
    /// 16-byte boundary below 1 MiB.
    #[error("MP table at {0:#x}: not on a 16-byte boundary with its region below 1 MiB")]
    MpTableAddress(u64),
    /// Writing the tables into guest memory failed.
    #[error("writing the tables at {0:#x} into guest memory failed")]
    Write(u64),
}

/// Tables laid out for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcpiTables {
    /// Where `bytes` go in guest memory; also the RSDP's address.
    pub base: u64,
    /// Every table, back to back (8-byte aligned), RSDP first.
    pub bytes: Vec<u8>,
}

impl AcpiTables {
    /// The RSDP's address, for start_info's `rsdp_paddr`.
    pub fn rsdp_addr(&self) -> u64 {
        self.base
    }

    /// Writes the tables into `mem`, after checking that they lie inside
    /// `region` (the loader's ACPI placement) and that the RSDP is where
    /// start_info says (`rsdp`).
    pub fn write_to<M: vm_memory::GuestMemory>(
        &self,
        mem: &M,
        region: &core::ops::Range<u64>,
        rsdp: Option<u64>,
    ) -> Result<(), AcpiError> {
        if rsdp != Some(self.rsdp_addr()) {
            return Err(AcpiError::DoesNotFit {
                base: self.base,
                len: self.bytes.len() as u64,
                start: region.start,
                end: region.end,
            });
        }
        write_inside(mem, self.base, &self.bytes, region)
    }
}

/// Writes `bytes` at `base` into `mem` if they lie inside `region` (the
/// loader's placement for them): the one write of both table sets.
fn write_inside<M: vm_memory::GuestMemory>(
    mem: &M,
    base: u64,
    bytes: &[u8],
    region: &core::ops::Range<u64>,
) -> Result<(), AcpiError> {
    let len = bytes.len() as u64;
    let fits = base
        .checked_add(len)
        .is_some_and(|end| base >= region.start && end <= region.end);
    if !fits {
        return Err(AcpiError::DoesNotFit {
            base,
            len,
            start: region.start,
            end: region.end,
        });
    }
    vm_memory::Bytes::write_slice(mem, bytes, vm_memory::GuestAddress(base))
        .map_err(|_| AcpiError::Write(base))
}

/// Whether a byte written to [`SLEEP_CONTROL_PORT`] asks for soft-off (S5).
pub fn is_poweroff(value: u8) -> bool {
    (value >> 2) & 0x7 == S5_SLEEP_TYPE && value & SLEEP_ENABLE != 0
}

fn bytes_of(table: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    table.to_aml_bytes(&mut v);
    v
}

fn align8(v: usize) -> usize {
    (v + 7) & !7
}

/// The platform the tables describe: the devices the DSDT names (each
/// device model supplies its own node) and the FADT's RTC century index.
/// The vCPU count is given per build, so one description serves every
/// domain of a VMM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Platform {
    /// Each device's DSDT node (complete AML `Device` objects), in order.
    pub devices: Vec<Vec<u8>>,
    /// The FADT's `CENTURY` field: the RTC's CMOS century index, if any.
    pub century: Option<u8>,
}

impl Platform {
    /// A platform with no devices (the DSDT holds only `_S5_`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device's DSDT node (AML bytes of a `Device` object, e.g.
    /// from [`isa`] or [`aml_bytes`]).
    pub fn device(mut self, aml: Vec<u8>) -> Self {
        self.devices.push(aml);
        self
    }

    /// Sets the FADT's century register index (the RTC's CMOS index).
    pub fn century(mut self, index: u8) -> Self {
        self.century = Some(index);
        self
    }

    /// Builds the tables for `cpus` vCPUs at `base` (see [`build`]).
    pub fn build(&self, base: u64, cpus: u8) -> Result<AcpiTables, AcpiError> {
        build(self, base, cpus)
    }
}

/// The AML encoding of `object`, for [`Platform::device`].
pub fn aml_bytes(object: &dyn Aml) -> Vec<u8> {
    bytes_of(object)
}

/// Builds the tables of `platform` for `cpus` vCPUs at `base` (16-byte
/// aligned, so the RSDP is where a scan would find it too).
pub fn build(platform: &Platform, base: u64, cpus: u8) -> Result<AcpiTables, AcpiError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(AcpiError::CpuCount(cpus));
    }
    if base
        .checked_add(REGION_SIZE)
        .is_none_or(|end| end > 1 << 32)
    {
        return Err(AcpiError::RegionTooHigh(base));
    }
    let base = (base + 15) & !15;

    // DSDT: `_S5_`, the sleep type Linux needs to power off through the
    // sleep control register, then every device's node. A hardware-reduced
    // machine has no legacy PIC, so Linux maps no ISA IRQs by itself
    // (nr_legacy_irqs() is 0): each ISA device must name its GSI here (see
    // [`isa`]).
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, 1);
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&S5_SLEEP_TYPE, &0u8]),
    );
    dsdt.append_slice(&bytes_of(&s5));
    for device in &platform.devices {
        dsdt.append_slice(device);
    }
    dsdt.update_checksum();
    let dsdt = dsdt.as_slice().to_vec();

    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        1,
        LocalInterruptController::Address(LAPIC_ADDR),
    );
    for id in 0..cpus {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(IOAPIC_ID, IOAPIC_ADDR, 0));
    let madt = bytes_of(&madt);

    // Layout: RSDP, XSDT, FADT, MADT, DSDT.
    let rsdp_len = Rsdp::len();
    let xsdt_off = align8(rsdp_len);
    let xsdt_len = 36 + 2 * 8;
    let fadt_off = align8(xsdt_off + xsdt_len);
    let madt_off = align8(fadt_off + acpi_tables::fadt::FADT::len());
    let dsdt_off = align8(madt_off + madt.len());
    let total = dsdt_off + dsdt.len();
    if total as u64 > REGION_SIZE {
        return Err(AcpiError::TooLarge {
            len: total as u64,
            max: REGION_SIZE,
        });
    }
    let at = |off: usize| base + off as u64;

    let sleep_reg = GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(SLEEP_CONTROL_PORT),
    );
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, 1)
        .dsdt_64(at(dsdt_off))
        .flag(Flags::HwReducedAcpi);
    fadt.sleep_control_reg = sleep_reg;
    fadt.sleep_status_reg = sleep_reg;
    // The RTC's century register, which Linux's RTC code reads when the
    // FADT names it (the spec leaves the field to legacy hardware; Linux
    // consults it either way), so years after 2099 read right.
    fadt.century = platform.century.unwrap_or(0);
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"PVHVMM\0\0").into();
    let fadt = bytes_of(&fadt.finalize());

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, 1);
    xsdt.add_entry(at(fadt_off));
    xsdt.add_entry(at(madt_off));
    let xsdt = bytes_of(&xsdt);
    debug_assert_eq!(xsdt.len(), xsdt_len);
    let rsdp = bytes_of(&Rsdp::new(OEM_ID, at(xsdt_off)));

    let mut bytes = vec![0u8; total];
    for (off, table) in [
        (0, &rsdp),
        (xsdt_off, &xsdt),
        (fadt_off, &fadt),
        (madt_off, &madt),
        (dsdt_off, &dsdt),
    ] {
        bytes[off..off + table.len()].copy_from_slice(table);
    }
    Ok(AcpiTables { base, bytes })
}

#[cfg(test)]
mod tests {
    //! The tables are decoded here by hand from the ACPI 6.5 offsets, and
    //! again by ACPICA's `iasl -d`, never by the code that wrote them.
    use super::*;

    const BASE: u64 = 0x000f_0000;

    /// The platform `pvh` describes: COM1 and the RTC, as its device
    /// models supply them.
    fn platform() -> Platform {
        Platform::new()
            .device(isa::uart("COM1", 0x3f8, 8, 4))
            .device(isa::rtc(0x70, 2, 8))
            .century(0x32)
    }

    fn build(base: u64, cpus: u8) -> Result<AcpiTables, AcpiError> {
        platform().build(base, cpus)
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// A table by guest address: checks signature, length and checksum.
    fn table<'a>(t: &'a AcpiTables, addr: u64, sig: &[u8; 4]) -> &'a [u8] {
        let off = (addr - t.base) as usize;
        let len = u32_at(&t.bytes, off + 4) as usize;
        let table = &t.bytes[off..off + len];
        assert_eq!(&table[..4], sig);
        assert_eq!(sum(table), 0, "{} checksum", String::from_utf8_lossy(sig));
        table
    }

    struct Decoded {
        fadt: Vec<u8>,
        madt: Vec<u8>,
        dsdt: Vec<u8>,
        xsdt: Vec<u8>,
        rsdp: Vec<u8>,
    }

    fn decode(t: &AcpiTables) -> Decoded {
        let rsdp = &t.bytes[..36];
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0, "ACPI 1.0 checksum");
        assert_eq!(sum(rsdp), 0, "extended checksum");
        assert_eq!(rsdp[15], 2, "revision");
        assert_eq!(u32_at(rsdp, 20), 36, "length");
        let xsdt = table(t, u64_at(rsdp, 24), b"XSDT");
        let entries: Vec<u64> = (36..xsdt.len())
            .step_by(8)
            .map(|o| u64_at(xsdt, o))
            .collect();
        assert_eq!(entries.len(), 2);
        let fadt = table(t, entries[0], b"FACP");
        let madt = table(t, entries[1], b"APIC");
        let dsdt = table(t, u64_at(fadt, 140), b"DSDT");
        Decoded {
            fadt: fadt.into(),
            madt: madt.into(),
            dsdt: dsdt.into(),
            xsdt: xsdt.into(),
            rsdp: rsdp.into(),
        }
    }

    #[test]
    fn tables_decode_for_every_cpu_count() {
        for cpus in 1..=MAX_CPUS {
            let t = build(BASE, cpus).unwrap();
            assert!(t.bytes.len() as u64 <= REGION_SIZE);
            assert_eq!(t.rsdp_addr(), BASE);
            let d = decode(&t);
            // FADT: hardware-reduced, sleep registers at the VMM's port.
            assert_ne!(u32_at(&d.fadt, 112) & (1 << 20), 0, "HW_REDUCED_ACPI");
            for gas in [244, 256] {
                assert_eq!(d.fadt[gas], 1, "SystemIO");
                assert_eq!(d.fadt[gas + 1], 8, "8-bit register");
                assert_eq!(u64_at(&d.fadt, gas + 4), u64::from(SLEEP_CONTROL_PORT));
            }
            // MADT: one enabled local APIC per vCPU with IDs 0..n, one IOAPIC.
            assert_eq!(u32_at(&d.madt, 36), 0xfee0_0000);
            let mut apic_ids = Vec::new();
            let mut ioapics = Vec::new();
            let mut off = 44;
            while off < d.madt.len() {
                let (kind, len) = (d.madt[off], d.madt[off + 1] as usize);
                match kind {
                    0 => {
                        assert_eq!(len, 8);
                        assert_eq!(u32_at(&d.madt, off + 4) & 1, 1, "enabled");
                        apic_ids.push(d.madt[off + 3]);
                    }
                    1 => {
                        assert_eq!(len, 12);
                        ioapics.push((u32_at(&d.madt, off + 4), u32_at(&d.madt, off + 8)));
                    }
                    other => panic!("unexpected MADT entry type {other}"),
                }
                off += len;
            }
            assert_eq!(apic_ids, (0..cpus).collect::<Vec<_>>());
            assert_eq!(ioapics, vec![(0xfec0_0000, 0)]);
            // DSDT: Name (_S5_, Package () { 5, 0 }).
            let s5 = d
                .dsdt
                .windows(4)
                .position(|w| w == b"_S5_")
                .expect("_S5_ in DSDT");
            assert_eq!(d.dsdt[s5 - 1], 0x08, "NameOp");
            assert_eq!(d.dsdt[s5 + 4], 0x12, "PackageOp");
            // COM1: _HID EISAID("PNP0501") as a DWordConst, an Extended
            // IRQ descriptor (consumer, edge, active high, exclusive) for
            // GSI 4 and an I/O port descriptor for 0x3f8..0x3ff.
            let has = |needle: &[u8]| d.dsdt.windows(needle.len()).any(|w| w == needle);
            assert!(has(b"COM1"));
            assert!(has(&[0x0c, 0x41, 0xd0, 0x05, 0x01]), "PNP0501");
            assert!(has(&[0x89, 6, 0, 0x03, 1, 4, 0, 0, 0]), "IRQ 4");
            assert!(has(&[0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8]), "IO 0x3f8");
            // The RTC: PNP0B00, I/O 0x70..0x71 and GSI 8, edge, active high.
            assert!(has(b"RTC_"));
            assert!(has(&[0x0c, 0x41, 0xd0, 0x0b, 0x00]), "PNP0B00");
            assert!(has(&[0x47, 1, 0x70, 0, 0x70, 0, 1, 2]), "IO 0x70");
            assert!(has(&[0x89, 6, 0, 0x03, 1, 8, 0, 0, 0]), "IRQ 8");
            // FADT byte 108: the century register's CMOS index.
            assert_eq!(d.fadt[108], 0x32, "century");
            let _ = (&d.xsdt, &d.rsdp);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(build(BASE, 0), Err(AcpiError::CpuCount(0)));
        assert_eq!(build(BASE, 33), Err(AcpiError::CpuCount(33)));
        assert_eq!(
            build(0xffff_f800, 1),
            Err(AcpiError::RegionTooHigh(0xffff_f800))
        );
    }

    #[test]
    fn poweroff_value() {
        // Linux writes (SLP_TYP << 2) | SLP_EN for S5.
        assert!(is_poweroff(0x34));
        assert!(!is_poweroff(0x14), "S5 without SLP_EN");
        assert!(!is_poweroff(0x20 | (3 << 2)), "S3");
    }

    /// ACPICA's disassembler as an outside judge. acpica-tools is installed
    /// by scripts/setup.sh.
    #[test]
    fn iasl_accepts_the_tables() {
        let Some(iasl) = ["/usr/bin/iasl", "/usr/local/bin/iasl"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "iasl (acpica-tools) missing under CI"
            );
            println!("skipped: iasl not installed (apt-get install acpica-tools)");
            return;
        };
        let cpus = 4;
        let t = build(BASE, cpus).unwrap();
        let d = decode(&t);
        let dir = std::env::temp_dir().join(format!("pvh-acpi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in [
            ("facp", &d.fadt),
            ("apic", &d.madt),
            ("dsdt", &d.dsdt),
            ("xsdt", &d.xsdt),
        ] {
            // (The RSDP is not an SDT; iasl cannot read it alone: it is
            // checked by `decode`.)
            let file = dir.join(format!("{name}.dat"));
            std::fs::write(&file, bytes).unwrap();
            let out = std::process::Command::new(iasl)
                .arg("-d")
                .arg(&file)
                .current_dir(&dir)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "iasl -d {name}: {log}");
            let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).unwrap();
            assert!(!dsl.contains("Incorrect"), "{name}: {dsl}");
            match name {
                "apic" => {
                    assert_eq!(
                        dsl.matches("[Processor Local APIC]").count(),
                        cpus as usize,
                        "{dsl}"
                    );
                    assert_eq!(dsl.matches("[I/O APIC]").count(), 1, "{dsl}");
                }
                "facp" => assert!(dsl.contains("Hardware Reduced (V5) : 1"), "{dsl}"),
                "dsdt" => {
                    assert!(dsl.contains("Name (_S5, Package"), "{dsl}");
                    assert!(dsl.contains("EisaId (\"PNP0501\")"), "{dsl}");
                    assert!(
                        dsl.contains("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"),
                        "{dsl}"
                    );
                    assert!(dsl.contains("0x00000004,"), "{dsl}");
                    assert!(dsl.contains("IO (Decode16"), "{dsl}");
                    assert!(dsl.contains("0x03F8"), "{dsl}");
                    assert!(dsl.contains("EisaId (\"PNP0B00\")"), "{dsl}");
                    assert!(dsl.contains("0x00000008,"), "{dsl}");
                    assert!(dsl.contains("0x0070"), "{dsl}");
                }
                _ => {}
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
