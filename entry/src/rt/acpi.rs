//! Reading the ACPI tables the RSDP leads to, enough for a guest to report
//! what it was given: every XSDT (or RSDT) entry with its signature and checksum, and
//! the processors and IOAPICs a MADT lists.
//!
//! Layout from the ACPI specification: the 36-byte system description table
//! header (5.2.6), the XSDT (5.2.8: 64-bit addresses after the header), the
//! MADT (5.2.12: local APIC address and flags, then entries of
//! `{u8 type, u8 length, ...}`; type 0 processor local APIC with its flags
//! at offset 4, bit 0 enabled; type 1 I/O APIC; type 9 processor local
//! x2APIC, flags at offset 8).

use crate::memory::{PhysRead, read_obj};
use crate::rt::rsdp::byte_sum;
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
    #[error("table at {addr:#x} is {found:?}, not {expected:?}")]
    Signature {
        /// Address.
        addr: u64,
        /// Signature found.
        found: [u8; 4],
        /// Signature expected.
        expected: [u8; 4],
    },
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
