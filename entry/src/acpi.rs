//! Reading the ACPI tables a hypervisor hands a guest: the RSDP
//! ([`rsdp`]), every XSDT (or RSDT) entry with its signature and checksum,
//! the processors and IOAPICs a MADT lists, and what a guest needs from the
//! FADT to power itself off.
//!
//! Plain code over [`PhysRead`], so the same reader runs in a guest (the
//! probe, the stub, the runtime's exit), in host tools and in host tests.
//!
//! Layout from the ACPI specification: the 36-byte system description table
//! header (5.2.6), the XSDT (5.2.8: 64-bit addresses after the header), the
//! MADT (5.2.12: local APIC address and flags, then entries of
//! `{u8 type, u8 length, ...}`; type 0 processor local APIC with its flags
//! at offset 4, bit 0 enabled; type 1 I/O APIC; type 9 processor local
//! x2APIC, flags at offset 8).

use crate::memory::{PhysRead, read_obj};
use rsdp::{Rsdp, byte_sum};

pub mod rsdp;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Longest table accepted: far more than a VM's tables need, small enough
/// that a lying `length` cannot make a guest read for long.
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// The header every system description table starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed)]
pub struct SdtHeader {
    /// Table signature, e.g. "APIC".
    pub signature: [u8; 4],
    /// Length of the whole table, header included.
    pub length: u32,
    /// Revision.
    pub revision: u8,
    /// Makes the whole table sum to 0.
    pub checksum: u8,
    /// OEM id.
    pub oem_id: [u8; 6],
    /// OEM table id.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// Creator id.
    pub creator_id: u32,
    /// Creator revision.
    pub creator_revision: u32,
}

const _: () = {
    assert!(size_of::<SdtHeader>() == 36);
    assert!(offset_of!(SdtHeader, signature) == 0);
    assert!(offset_of!(SdtHeader, length) == 4);
    assert!(offset_of!(SdtHeader, revision) == 8);
    assert!(offset_of!(SdtHeader, checksum) == 9);
    assert!(offset_of!(SdtHeader, oem_id) == 10);
    assert!(offset_of!(SdtHeader, oem_table_id) == 16);
    assert!(offset_of!(SdtHeader, oem_revision) == 24);
    assert!(offset_of!(SdtHeader, creator_id) == 28);
    assert!(offset_of!(SdtHeader, creator_revision) == 32);
};

/// Why a table is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Part of the table is outside memory.
    #[error("table at {0:#x} is outside memory")]
    OutOfRange(u64),
    /// `length` is below the header size or above [`MAX_TABLE_LEN`].
    #[error("table at {addr:#x} claims length {length}")]
    Length {
        /// Address.
        addr: u64,
        /// Length field.
        length: u32,
    },
    /// The bytes do not sum to 0.
    #[error("table at {addr:#x}: checksum sums to {sum:#04x}, not 0")]
    Checksum {
        /// Address.
        addr: u64,
        /// The sum found.
        sum: u8,
    },
    /// Not the table expected.
    #[error("table at {addr:#x} is {}, not {}", Signature(*.found), Signature(*.expected))]
    Signature {
        /// Address.
        addr: u64,
        /// Signature found.
        found: [u8; 4],
        /// Signature expected.
        expected: [u8; 4],
    },
}

/// A table signature for messages: `"APIC"`, with any byte that is not
/// printable ASCII as `\xNN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 4]);

impl core::fmt::Display for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("\"")?;
        for b in self.0 {
            match b {
                b'"' | b'\\' => write!(f, "\\x{b:02x}")?,
                0x20..=0x7e => core::fmt::Write::write_char(f, char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Reads the header at `addr` and checks length and checksum.
pub fn table<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Result<SdtHeader, TableError> {
    let header: SdtHeader = read_obj(mem, addr).map_err(|_| TableError::OutOfRange(addr))?;
    let length = header.length;
    if (length as usize) < size_of::<SdtHeader>() || length > MAX_TABLE_LEN {
        return Err(TableError::Length { addr, length });
    }
    let mut sum = 0u8;
    let mut buf = [0u8; 64];
    let mut done = 0u32;
    while done < length {
        let n = (length - done).min(buf.len() as u32) as usize;
        let at = addr
            .checked_add(u64::from(done))
            .ok_or(TableError::OutOfRange(addr))?;
        mem.read(at, &mut buf[..n])
            .map_err(|_| TableError::OutOfRange(addr))?;
        sum = sum.wrapping_add(byte_sum(&buf[..n]));
        done += n as u32;
    }
    if sum != 0 {
        return Err(TableError::Checksum { addr, sum });
    }
    Ok(header)
}

fn expect<M: PhysRead + ?Sized>(
    mem: &M,
    addr: u64,
    expected: [u8; 4],
) -> Result<SdtHeader, TableError> {
    let header = table(mem, addr)?;
    if header.signature != expected {
        return Err(TableError::Signature {
            addr,
            found: header.signature,
            expected,
        });
    }
    Ok(header)
}

/// A root table: the XSDT (64-bit entries, ACPI 2.0+) or the RSDT (32-bit
/// entries, what a revision-0 RSDP points at). Its entries are read one by
/// one.
#[derive(Debug, Clone, Copy)]
pub struct Xsdt {
    addr: u64,
    count: u32,
    entry_size: u32,
}

impl Xsdt {
    /// Checks the XSDT at `addr`.
    pub fn read<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Result<Self, TableError> {
        Self::root(mem, addr, *b"XSDT", 8)
    }

    /// Checks the RSDT at `addr` (32-bit entries).
    pub fn read_rsdt<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Result<Self, TableError> {
        Self::root(mem, addr, *b"RSDT", 4)
    }

    fn root<M: PhysRead + ?Sized>(
        mem: &M,
        addr: u64,
        sig: [u8; 4],
        entry_size: u32,
    ) -> Result<Self, TableError> {
        let header = expect(mem, addr, sig)?;
        let count = (header.length - size_of::<SdtHeader>() as u32) / entry_size;
        Ok(Self {
            addr,
            count,
            entry_size,
        })
    }

    /// The root table's own address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `index`: a table's physical address.
    pub fn entry<M: PhysRead + ?Sized>(&self, mem: &M, index: u32) -> Option<u64> {
        if index >= self.count {
            return None;
        }
        let at = self.addr
            + size_of::<SdtHeader>() as u64
            + u64::from(index) * u64::from(self.entry_size);
        if self.entry_size == 4 {
            read_obj::<u32, _>(mem, at).ok().map(u64::from)
        } else {
            read_obj(mem, at).ok()
        }
    }
}

/// The root table an RSDP names: its XSDT when the revision is 2 or later
/// and the address is set, else its RSDT; `None` when it names neither.
pub fn root<M: PhysRead + ?Sized>(mem: &M, rsdp: &Rsdp) -> Option<Result<Xsdt, TableError>> {
    let (xsdt, rsdt) = (rsdp.xsdt_address, rsdp.rsdt_address);
    if rsdp.revision >= 2 && xsdt != 0 {
        Some(Xsdt::read(mem, xsdt))
    } else if rsdt != 0 {
        Some(Xsdt::read_rsdt(mem, u64::from(rsdt)))
    } else {
        None
    }
}

/// Most root-table entries [`walk`] visits: far more than a VM has, and a
/// bound on the time a lying root table can cost.
pub const MAX_WALK_ENTRIES: u32 = 64;

/// A table [`walk`] reached, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The root table (XSDT or RSDT).
    Root,
    /// Entry N of the root table.
    Entry(u32),
    /// The DSDT the FADT names.
    Dsdt,
}

impl core::fmt::Display for Reached {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Root => f.write_str("root table"),
            Self::Entry(i) => write!(f, "root entry {i}"),
            Self::Dsdt => f.write_str("DSDT"),
        }
    }
}

/// Offset of `DSDT` (32-bit address) in the FADT (ACPI 6.5, 5.2.9).
pub const FADT_DSDT: u64 = 40;
/// Offset of `PM1a_CNT_BLK` (I/O port) in the FADT.
pub const FADT_PM1A_CNT_BLK: u64 = 64;
/// Offset of `Flags` in the FADT.
pub const FADT_FLAGS: u64 = 112;
/// Offset of `X_DSDT` (64-bit address) in the FADT.
pub const FADT_X_DSDT: u64 = 140;
/// Offset of `SLEEP_CONTROL_REG` (a 12-byte Generic Address) in the FADT.
pub const FADT_SLEEP_CONTROL_REG: u64 = 244;
/// FADT flag `HW_REDUCED_ACPI`.
pub const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;

/// Visits every table an RSDP leads to, with its header check: the root
/// table, each table it lists (at most [`MAX_WALK_ENTRIES`]) and the DSDT
/// the FADT names (`X_DSDT` if set, else `DSDT`). Returns `false` if the
/// RSDP names no root table.
pub fn walk<M: PhysRead + ?Sized>(
    mem: &M,
    rsdp: &Rsdp,
    visit: &mut dyn FnMut(Reached, u64, Result<SdtHeader, TableError>),
) -> bool {
    let Some(root) = root(mem, rsdp) else {
        return false;
    };
    let root = match root {
        Ok(r) => r,
        Err(e) => {
            let addr = match e {
                TableError::OutOfRange(a) => a,
                TableError::Length { addr, .. }
                | TableError::Checksum { addr, .. }
                | TableError::Signature { addr, .. } => addr,
            };
            visit(Reached::Root, addr, Err(e));
            return true;
        }
    };
    visit(Reached::Root, root.addr(), table(mem, root.addr()));
    for i in 0..root.len().min(MAX_WALK_ENTRIES) {
        let Some(addr) = root.entry(mem, i) else {
            continue;
        };
        let header = table(mem, addr);
        visit(Reached::Entry(i), addr, header);
        if let Ok(h) = header {
            if &h.signature == b"FACP" {
                if let Some(dsdt) = fadt_dsdt(mem, addr, h.length) {
                    visit(Reached::Dsdt, dsdt, table(mem, dsdt));
                }
            }
        }
    }
    true
}

/// Calls `visit(start, len)` for every range the ACPI data an RSDP at
/// `rsdp_addr` leads to occupies: the RSDP itself (20 bytes, or its
/// `length` from revision 2) and each table [`walk`] reaches whose header
/// checks (its `length`). What a guest must not overwrite while it still
/// needs the tables, wherever the memory map says they are (Cloud
/// Hypervisor's are outside it). Stops at the first error `visit` returns.
pub fn table_ranges<M: PhysRead + ?Sized, E>(
    mem: &M,
    rsdp_addr: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    let Ok(r) = rsdp::check(mem, rsdp_addr) else {
        return visit(rsdp_addr, rsdp::RSDP_V1_LEN as u64);
    };
    let len = if r.revision >= 2 {
        u64::from(r.length)
    } else {
        rsdp::RSDP_V1_LEN as u64
    };
    visit(rsdp_addr, len)?;
    let mut result = Ok(());
    walk(mem, &r, &mut |_, addr, header| {
        if let (Ok(h), Ok(())) = (header, &result) {
            result = visit(addr, u64::from(h.length));
        }
    });
    result
}

/// The DSDT address a FADT of `length` bytes at `fadt` names.
fn fadt_dsdt<M: PhysRead + ?Sized>(mem: &M, fadt: u64, length: u32) -> Option<u64> {
    let length = u64::from(length);
    if length >= FADT_X_DSDT + 8 {
        let x: u64 = read_obj(mem, fadt + FADT_X_DSDT).ok()?;
        if x != 0 {
            return Some(x);
        }
    }
    if length >= FADT_DSDT + 4 {
        let d: u32 = read_obj(mem, fadt + FADT_DSDT).ok()?;
        if d != 0 {
            return Some(u64::from(d));
        }
    }
    None
}

/// How to put the machine into ACPI S5 (soft off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// Hardware-reduced ACPI: write `value` (`SLP_TYP << 2 | SLP_EN`) to the
    /// 8-bit I/O port of the FADT's sleep control register (ACPI 6.5,
    /// 4.8.3.7). What Cloud Hypervisor and pvh implement.
    SleepControl {
        /// The I/O port.
        port: u16,
        /// The byte to write.
        value: u8,
    },
    /// Fixed hardware: write `value` (`SLP_TYP << 10 | SLP_EN`) to the
    /// 16-bit `PM1a_CNT` port (ACPI 6.5, 4.8.3.2.1). What QEMU's PC
    /// machines implement.
    Pm1Control {
        /// The I/O port.
        port: u16,
        /// The word to write.
        value: u16,
    },
}

/// The S5 sleep type from a DSDT's `_S5_` package: the first element,
/// encoded as `ZeroOp`, `OneOp` or a `BytePrefix` constant (what every
/// VMM's table builder emits). A byte scan, not an AML interpreter: `None`
/// when the encoding is anything else.
pub fn s5_sleep_type(aml: &[u8]) -> Option<u8> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let mut rest = aml.get(at + 4..)?.iter().copied();
    if rest.next()? != 0x12 {
        return None; // PackageOp
    }
    // PkgLength: bits 7:6 of the lead byte = how many bytes follow.
    let lead = rest.next()?;
    for _ in 0..(lead >> 6) {
        rest.next()?;
    }
    let _num_elements = rest.next()?;
    match rest.next()? {
        0x00 => Some(0),
        0x01 => Some(1),
        0x0a => rest.next(),
        _ => None,
    }
}

/// Longest DSDT [`s5_poweroff`] reads.
pub const MAX_DSDT_SCAN: u32 = 64 * 1024;

/// How to power off, from the FADT an RSDP at `rsdp_addr` leads to and the
/// `_S5_` object of its DSDT. `None` if any of it is missing or unreadable,
/// or the register is not in I/O space.
pub fn s5_poweroff<M: PhysRead + ?Sized>(mem: &M, rsdp_addr: u64) -> Option<PowerOff> {
    let rsdp = rsdp::check(mem, rsdp_addr).ok()?;
    let root = root(mem, &rsdp)?.ok()?;
    let (fadt, length) = (0..root.len().min(MAX_WALK_ENTRIES))
        .filter_map(|i| root.entry(mem, i))
        .find_map(|addr| {
            let h = table(mem, addr).ok()?;
            (&h.signature == b"FACP").then_some((addr, h.length))
        })?;
    let dsdt = fadt_dsdt(mem, fadt, length)?;
    let dsdt_len = table(mem, dsdt).ok()?.length.min(MAX_DSDT_SCAN);
    let mut aml = [0u8; 512];
    // `_S5_` with its package is a few bytes: scan in overlapping windows.
    let mut slp_typ = None;
    let mut off = 36u32;
    while off < dsdt_len && slp_typ.is_none() {
        let n = (dsdt_len - off).min(aml.len() as u32) as usize;
        mem.read(dsdt + u64::from(off), &mut aml[..n]).ok()?;
        slp_typ = s5_sleep_type(&aml[..n]);
        off += (aml.len() - 16) as u32;
    }
    let slp_typ = slp_typ?;
    let flags: u32 = read_obj(mem, fadt + FADT_FLAGS).ok()?;
    let length = u64::from(length);
    if flags & FADT_HW_REDUCED_ACPI != 0 && length >= FADT_SLEEP_CONTROL_REG + 12 {
        let mut gas = [0u8; 12];
        mem.read(fadt + FADT_SLEEP_CONTROL_REG, &mut gas).ok()?;
        let address = u64::from_le_bytes(gas[4..12].try_into().ok()?);
        // Address space 1 = system I/O.
        if gas[0] != 1 || address == 0 {
            return None;
        }
        return Some(PowerOff::SleepControl {
            port: u16::try_from(address).ok()?,
            value: ((slp_typ & 7) << 2) | (1 << 5),
        });
    }
    let port: u32 = read_obj(mem, fadt + FADT_PM1A_CNT_BLK).ok()?;
    Some(PowerOff::Pm1Control {
        port: u16::try_from(port).ok().filter(|&p| p != 0)?,
        value: (u16::from(slp_typ & 7) << 10) | (1 << 13),
    })
}

/// What a MADT lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MadtSummary {
    /// The local APIC address.
    pub lapic_addr: u32,
    /// Processors (local APIC or x2APIC entries) marked enabled.
    pub enabled_cpus: u32,
    /// Processors listed but not enabled.
    pub disabled_cpus: u32,
    /// I/O APIC entries.
    pub ioapics: u32,
    /// Entries of other types.
    pub other: u32,
}

/// Reads the MADT at `addr`. Walks entries by their own lengths; an entry
/// of length 0 or one running past the table ends the walk with an error
/// rather than a loop.
pub fn madt<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Result<MadtSummary, TableError> {
    let header = expect(mem, addr, *b"APIC")?;
    let end = addr + u64::from(header.length);
    let oor = TableError::OutOfRange(addr);
    let mut summary = MadtSummary {
        lapic_addr: read_obj(mem, addr + 36).map_err(|_| oor)?,
        ..MadtSummary::default()
    };
    let mut at = addr + 44;
    while at < end {
        let mut head = [0u8; 2];
        mem.read(at, &mut head).map_err(|_| oor)?;
        let (kind, len) = (head[0], u64::from(head[1]));
        if len < 2 || at + len > end {
            return Err(TableError::Length {
                addr: at,
                length: len as u32,
            });
        }
        let flags_at = match kind {
            0 => Some(4),
            9 => Some(8),
            _ => None,
        };
        match (kind, flags_at) {
            (_, Some(off)) => {
                let flags: u32 = read_obj(mem, at + off).map_err(|_| oor)?;
                if flags & 1 != 0 {
                    summary.enabled_cpus += 1;
                } else {
                    summary.disabled_cpus += 1;
                }
            }
            (1, None) => summary.ioapics += 1,
            _ => summary.other += 1,
        }
        at += len;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SliceMemory;

    /// A table with a correct checksum, built byte by byte here.
    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[1, 0]);
        t.extend_from_slice(b"OEMID_TABLEID__\0\0\0\0\0\0\0\0\0\0\0\0\0");
        t.truncate(36);
        t.extend_from_slice(body);
        let sum = byte_sum(&t);
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    fn madt_body(cpus: &[(u8, bool)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for &(id, enabled) in cpus {
            b.extend_from_slice(&[0, 8, id, id]);
            b.extend_from_slice(&u32::from(enabled).to_le_bytes());
        }
        b.extend_from_slice(&[1, 12, 0, 0]);
        b.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    #[test]
    fn xsdt_and_madt() {
        let madt_table = sdt(b"APIC", &madt_body(&[(0, true), (1, true), (2, false)]));
        let mut xsdt_body = Vec::new();
        xsdt_body.extend_from_slice(&0x2000u64.to_le_bytes());
        xsdt_body.extend_from_slice(&0x3000u64.to_le_bytes());
        let xsdt_table = sdt(b"XSDT", &xsdt_body);
        let mut mem = vec![0u8; 0x4000];
        mem[0x1000..0x1000 + xsdt_table.len()].copy_from_slice(&xsdt_table);
        mem[0x2000..0x2000 + madt_table.len()].copy_from_slice(&madt_table);
        let mem = SliceMemory::new(0, mem);
        let x = Xsdt::read(&mem, 0x1000).unwrap();
        assert_eq!(x.len(), 2);
        assert_eq!(x.entry(&mem, 0), Some(0x2000));
        assert_eq!(x.entry(&mem, 1), Some(0x3000));
        assert_eq!(x.entry(&mem, 2), None);
        assert_eq!(
            madt(&mem, 0x2000),
            Ok(MadtSummary {
                lapic_addr: 0xfee0_0000,
                enabled_cpus: 2,
                disabled_cpus: 1,
                ioapics: 1,
                other: 0
            })
        );
        // Entry 1 points at zeros: no table there.
        assert!(matches!(
            table(&mem, 0x3000),
            Err(TableError::Length { length: 0, .. })
        ));
        assert!(matches!(
            Xsdt::read(&mem, 0x2000),
            Err(TableError::Signature { .. })
        ));
    }

    #[test]
    fn signatures_print_as_escaped_text() {
        let e = TableError::Signature {
            addr: 0x4060f42,
            found: [0x53, 0xff, 0x00, 0xf0],
            expected: *b"XSDT",
        };
        assert_eq!(
            e.to_string(),
            "table at 0x4060f42 is \"S\\xff\\x00\\xf0\", not \"XSDT\""
        );
    }

    #[test]
    fn rsdt_has_32_bit_entries() {
        let mut body = Vec::new();
        body.extend_from_slice(&0x2000u32.to_le_bytes());
        body.extend_from_slice(&0x2100u32.to_le_bytes());
        body.extend_from_slice(&0x2200u32.to_le_bytes());
        let rsdt = sdt(b"RSDT", &body);
        let mem = SliceMemory::new(0, rsdt);
        let r = Xsdt::read_rsdt(&mem, 0).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.entry(&mem, 2), Some(0x2200));
        assert!(matches!(
            Xsdt::read(&mem, 0),
            Err(TableError::Signature { .. })
        ));
    }

    #[test]
    fn bad_tables_are_errors() {
        let mut t = sdt(b"APIC", &madt_body(&[(0, true)]));
        t[40] ^= 1; // flags byte: checksum now wrong
        let mem = SliceMemory::new(0, t.clone());
        assert!(matches!(madt(&mem, 0), Err(TableError::Checksum { .. })));
        // An entry of length 0 must not loop.
        let mut body = madt_body(&[(0, true)]);
        body[9] = 0;
        let mem = SliceMemory::new(0, sdt(b"APIC", &body));
        assert!(matches!(madt(&mem, 0), Err(TableError::Length { .. })));
        // A length past memory.
        let mut t = sdt(b"XSDT", &[]);
        t[4] = 0xff;
        let mem = SliceMemory::new(0, t);
        assert!(matches!(table(&mem, 0), Err(TableError::OutOfRange(0))));
    }

    /// A FADT of `len` bytes (hand-laid from the ACPI 6.5 offsets) naming
    /// `dsdt` in X_DSDT, with `flags` and an I/O sleep control register at
    /// `port`.
    fn fadt(len: usize, dsdt: u64, flags: u32, port: u16, pm1a: u32) -> Vec<u8> {
        let mut body = vec![0u8; len - 36];
        let at = |off: usize| off - 36;
        body[at(64)..at(68)].copy_from_slice(&pm1a.to_le_bytes());
        body[at(112)..at(116)].copy_from_slice(&flags.to_le_bytes());
        if len >= 148 {
            body[at(140)..at(148)].copy_from_slice(&dsdt.to_le_bytes());
        } else {
            body[at(40)..at(44)].copy_from_slice(&(dsdt as u32).to_le_bytes());
        }
        if len >= 256 {
            body[at(244)..at(248)].copy_from_slice(&[1, 8, 0, 1]);
            body[at(248)..at(256)].copy_from_slice(&u64::from(port).to_le_bytes());
        }
        sdt(b"FACP", &body)
    }

    /// Memory with an RSDP at 0x100 (revision 2), an XSDT at 0x200 listing
    /// a FADT at 0x400 and a MADT at 0x800, and a DSDT at 0xc00 holding
    /// `Name (_S5_, Package () { 5, 0 })` as AML bytes.
    fn machine(fadt_table: &[u8]) -> Vec<u8> {
        let mut mem = vec![0u8; 0x1000];
        let mut rsdp = [0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&0x200u64.to_le_bytes());
        rsdp[8] = 0u8.wrapping_sub(byte_sum(&rsdp[..20]));
        rsdp[32] = 0u8.wrapping_sub(byte_sum(&rsdp));
        mem[0x100..0x124].copy_from_slice(&rsdp);
        let mut xsdt_body = Vec::new();
        xsdt_body.extend_from_slice(&0x400u64.to_le_bytes());
        xsdt_body.extend_from_slice(&0x800u64.to_le_bytes());
        let xsdt = sdt(b"XSDT", &xsdt_body);
        mem[0x200..0x200 + xsdt.len()].copy_from_slice(&xsdt);
        mem[0x400..0x400 + fadt_table.len()].copy_from_slice(fadt_table);
        let madt_table = sdt(b"APIC", &madt_body(&[(0, true)]));
        mem[0x800..0x800 + madt_table.len()].copy_from_slice(&madt_table);
        let dsdt = sdt(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x0a, 0x05, 0x00,
            ],
        );
        mem[0xc00..0xc00 + dsdt.len()].copy_from_slice(&dsdt);
        mem
    }

    #[test]
    fn walk_visits_root_entries_and_the_dsdt() {
        let mem = SliceMemory::new(
            0,
            machine(&fadt(276, 0xc00, FADT_HW_REDUCED_ACPI, 0x3c0, 0)),
        );
        let r = rsdp::check(&mem, 0x100).unwrap();
        let mut seen = Vec::new();
        assert!(walk(&mem, &r, &mut |what, addr, h| seen.push((
            what,
            addr,
            h.map(|h| h.signature)
        ))));
        assert_eq!(
            seen,
            vec![
                (Reached::Root, 0x200, Ok(*b"XSDT")),
                (Reached::Entry(0), 0x400, Ok(*b"FACP")),
                (Reached::Dsdt, 0xc00, Ok(*b"DSDT")),
                (Reached::Entry(1), 0x800, Ok(*b"APIC")),
            ]
        );
        // A broken root is reported once, with its address.
        let mut bad = machine(&fadt(276, 0xc00, 0, 0, 0));
        bad[0x200 + 20] ^= 1;
        let mem = SliceMemory::new(0, bad);
        let mut seen = Vec::new();
        assert!(walk(&mem, &r, &mut |what, addr, h| seen.push((
            what,
            addr,
            h.is_ok()
        ))));
        assert_eq!(seen, vec![(Reached::Root, 0x200, false)]);
        // An RSDP naming no root table.
        let mut none = r;
        none.xsdt_address = 0;
        assert!(!walk(&mem, &none, &mut |_, _, _| panic!(
            "nothing to visit"
        )));
    }

    #[test]
    fn table_ranges_cover_the_rsdp_and_every_table() {
        let mem = SliceMemory::new(0, machine(&fadt(276, 0xc00, 0, 0, 0)));
        let mut seen = Vec::new();
        table_ranges::<_, ()>(&mem, 0x100, |s, l| {
            seen.push((s, l));
            Ok(())
        })
        .unwrap();
        // RSDP (36), XSDT (36 + 2 x 8), FADT (276), DSDT (36 + 11), MADT (36 +
        // 8 + one LAPIC entry of 8 + one IOAPIC entry of 12).
        assert_eq!(
            seen,
            vec![
                (0x100, 36),
                (0x200, 52),
                (0x400, 276),
                (0xc00, 47),
                (0x800, 64)
            ]
        );
        // An error from the visitor stops the walk and comes back.
        let mut n = 0;
        let r = table_ranges(&mem, 0x100, |_, _| {
            n += 1;
            if n == 2 { Err("full") } else { Ok(()) }
        });
        assert_eq!((r, n), (Err("full"), 2));
        // No RSDP there: only the 20 bytes that were named.
        let mut seen = Vec::new();
        table_ranges::<_, ()>(&mem, 0x180, |s, l| {
            seen.push((s, l));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0x180, 20)]);
    }

    #[test]
    fn s5_from_the_sleep_control_register_or_pm1a() {
        // Hardware-reduced (Cloud Hypervisor, pvh): sleep control register.
        let mem = SliceMemory::new(
            0,
            machine(&fadt(276, 0xc00, FADT_HW_REDUCED_ACPI, 0x3c0, 0)),
        );
        assert_eq!(
            s5_poweroff(&mem, 0x100),
            Some(PowerOff::SleepControl {
                port: 0x3c0,
                value: 0x34
            })
        );
        // Fixed hardware (QEMU PC): PM1a_CNT, SLP_TYP << 10 | SLP_EN.
        let mem = SliceMemory::new(0, machine(&fadt(244, 0xc00, 0, 0, 0x604)));
        assert_eq!(
            s5_poweroff(&mem, 0x100),
            Some(PowerOff::Pm1Control {
                port: 0x604,
                value: 0x3400
            })
        );
        // Hardware-reduced without a sleep register (Firecracker): none.
        let mem = SliceMemory::new(0, machine(&fadt(244, 0xc00, FADT_HW_REDUCED_ACPI, 0, 0)));
        assert_eq!(s5_poweroff(&mem, 0x100), None);
        // No _S5_ in the DSDT: none.
        let mut m = machine(&fadt(276, 0xc00, FADT_HW_REDUCED_ACPI, 0x3c0, 0));
        m[0xc00 + 36 + 3] = b'4';
        let fixed = {
            let len = 36 + 11;
            let sum = byte_sum(&m[0xc00..0xc00 + len]);
            m[0xc00 + 9] = m[0xc00 + 9].wrapping_sub(sum);
            m
        };
        assert_eq!(s5_poweroff(&SliceMemory::new(0, fixed), 0x100), None);
        // No RSDP there.
        assert_eq!(s5_poweroff(&mem, 0x180), None);
    }

    #[test]
    fn s5_sleep_type_encodings() {
        let pkg = |elem: &[u8]| {
            let mut v = vec![0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04];
            v.extend_from_slice(elem);
            v
        };
        assert_eq!(s5_sleep_type(&pkg(&[0x0a, 0x07])), Some(7));
        assert_eq!(s5_sleep_type(&pkg(&[0x00])), Some(0));
        assert_eq!(s5_sleep_type(&pkg(&[0x01])), Some(1));
        assert_eq!(s5_sleep_type(&pkg(&[0x0b, 0x05, 0x00])), None);
        // A two-byte PkgLength (lead byte 0x4n): one more byte skipped.
        assert_eq!(
            s5_sleep_type(&[b'_', b'S', b'5', b'_', 0x12, 0x41, 0x00, 0x02, 0x0a, 0x05]),
            Some(5)
        );
        assert_eq!(s5_sleep_type(b"_S5_"), None);
        assert_eq!(s5_sleep_type(b"nothing"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), at in 0u64..64) {
            let mem = SliceMemory::new(0, bytes);
            let _ = madt(&mem, at);
            if let Ok(x) = Xsdt::read(&mem, at) {
                for i in 0..x.len().min(64) {
                    let _ = x.entry(&mem, i);
                }
            }
        }
    }
}
