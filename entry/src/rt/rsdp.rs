//! The ACPI Root System Description Pointer: checking one, and finding one
//! the way a PC BIOS leaves it when the start_info carries no address.
//!
//! Layout from the ACPI specification (5.2.5.3, "Root System Description
//! Pointer Structure"): 20 bytes for revision 0 (ACPI 1.0), 36 bytes from
//! revision 2 on, with a second checksum over `length` bytes.

use crate::memory::{PhysRead, read_obj};
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// "RSD PTR ".
pub const RSDP_SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 checksum.
pub const RSDP_V1_LEN: usize = 20;
/// Where a BIOS leaves the RSDP on a PC (besides the first KiB of the
/// EBDA): the BIOS read-only area, searched on 16-byte boundaries.
pub use crate::machine::BIOS_AREA;

/// The RSDP, revision 2 layout (a revision-0 RSDP is its first 20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed)]
pub struct Rsdp {
    /// "RSD PTR ".
    pub signature: [u8; 8],
    /// Makes the first 20 bytes sum to 0.
    pub checksum: u8,
    /// OEM id.
    pub oem_id: [u8; 6],
    /// 0 for ACPI 1.0, 2 from ACPI 2.0 on.
    pub revision: u8,
    /// Physical address of the RSDT.
    pub rsdt_address: u32,
    /// Length of the whole structure (revision >= 2).
    pub length: u32,
    /// Physical address of the XSDT (revision >= 2).
    pub xsdt_address: u64,
    /// Makes all `length` bytes sum to 0 (revision >= 2).
    pub extended_checksum: u8,
    /// Reserved.
    pub reserved: [u8; 3],
}

const _: () = {
    assert!(size_of::<Rsdp>() == 36);
    assert!(offset_of!(Rsdp, checksum) == 8);
    assert!(offset_of!(Rsdp, oem_id) == 9);
    assert!(offset_of!(Rsdp, revision) == 15);
    assert!(offset_of!(Rsdp, rsdt_address) == 16);
    assert!(offset_of!(Rsdp, length) == 20);
    assert!(offset_of!(Rsdp, xsdt_address) == 24);
    assert!(offset_of!(Rsdp, extended_checksum) == 32);
};

/// Why an RSDP is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RsdpError {
    /// The bytes are not readable.
    #[error("RSDP at {0:#x} is outside memory")]
    OutOfRange(u64),
    /// Wrong signature.
    #[error("no \"RSD PTR \" signature at {0:#x}")]
    Signature(u64),
    /// The first 20 bytes do not sum to 0.
    #[error("RSDP at {addr:#x}: ACPI 1.0 checksum sums to {sum:#04x}, not 0")]
    Checksum {
        /// Address.
        addr: u64,
        /// The byte sum found.
        sum: u8,
    },
    /// Revision >= 2 with a `length` that cannot be right.
    #[error("RSDP at {addr:#x}: revision {revision} with length {length}")]
    Length {
        /// Address.
        addr: u64,
        /// Revision.
        revision: u8,
        /// Length field.
        length: u32,
    },
    /// Revision >= 2 and the whole structure does not sum to 0.
    #[error("RSDP at {addr:#x}: extended checksum sums to {sum:#04x}, not 0")]
    ExtendedChecksum {
        /// Address.
        addr: u64,
        /// The byte sum found.
        sum: u8,
    },
}

/// Wrapping byte sum.
pub fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Reads and checks the RSDP at `addr`: signature, the ACPI 1.0 checksum,
/// and for revision 2 or later the length and the extended checksum.
pub fn check<M: PhysRead + ?Sized>(mem: &M, addr: u64) -> Result<Rsdp, RsdpError> {
    let mut v1 = [0u8; RSDP_V1_LEN];
    mem.read(addr, &mut v1)
        .map_err(|_| RsdpError::OutOfRange(addr))?;
    if v1[..8] != RSDP_SIGNATURE {
        return Err(RsdpError::Signature(addr));
    }
    let sum = byte_sum(&v1);
    if sum != 0 {
        return Err(RsdpError::Checksum { addr, sum });
    }
    let revision = v1[15];
    if revision < 2 {
        let mut rsdp = Rsdp::new_zeroed();
        rsdp.as_mut_bytes()[..RSDP_V1_LEN].copy_from_slice(&v1);
        return Ok(rsdp);
    }
    let rsdp: Rsdp = read_obj(mem, addr).map_err(|_| RsdpError::OutOfRange(addr))?;
    let length = rsdp.length;
    if (length as usize) < size_of::<Rsdp>() || length > 4096 {
        return Err(RsdpError::Length {
            addr,
            revision,
            length,
        });
    }
    // Sum `length` bytes (normally exactly the 36 just read) in chunks.
    let mut sum = 0u8;
    let mut buf = [0u8; 64];
    let mut done = 0u32;
    while done < length {
        let n = (length - done).min(buf.len() as u32) as usize;
        let at = addr + u64::from(done);
        mem.read(at, &mut buf[..n])
            .map_err(|_| RsdpError::OutOfRange(addr))?;
        sum = sum.wrapping_add(byte_sum(&buf[..n]));
        done += n as u32;
    }
    if sum != 0 {
        return Err(RsdpError::ExtendedChecksum { addr, sum });
    }
    Ok(rsdp)
}

/// The first valid RSDP on a 16-byte boundary in `range`, as a BIOS leaves
/// it (callers pass [`BIOS_AREA`]).
pub fn scan<M: PhysRead + ?Sized>(mem: &M, range: core::ops::Range<u64>) -> Option<u64> {
    let mut addr = (range.start + 15) & !15;
    while addr.checked_add(RSDP_V1_LEN as u64)? <= range.end {
        if check(mem, addr).is_ok() {
            return Some(addr);
        }
        addr += 16;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SliceMemory;

    /// A revision-2 RSDP with both checksums fixed up by hand here (the
    /// expected values do not come from the code under test).
    fn rsdp_v2() -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..8].copy_from_slice(b"RSD PTR ");
        b[9..15].copy_from_slice(b"BOCHS ");
        b[15] = 2;
        b[16..20].copy_from_slice(&0x7fe_1234u32.to_le_bytes());
        b[20..24].copy_from_slice(&36u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x7fe_2000u64.to_le_bytes());
        let s1: u32 = b[..20].iter().map(|&x| u32::from(x)).sum();
        b[8] = (256 - s1 % 256) as u8;
        let s2: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[32] = ((256 - s2 % 256) % 256) as u8;
        b
    }

    #[test]
    fn accepts_a_good_rsdp_and_names_each_defect() {
        let base = 0xe_0000;
        let mut mem = vec![0u8; 0x2_0000];
        mem[0x1230..0x1230 + 36].copy_from_slice(&rsdp_v2());
        let m = SliceMemory::new(base, mem.clone());
        let r = check(&m, base + 0x1230).unwrap();
        assert_eq!({ r.xsdt_address }, 0x7fe_2000);
        assert_eq!(scan(&m, BIOS_AREA), Some(base + 0x1230));

        let mut bad = mem.clone();
        bad[0x1230 + 30] ^= 1;
        let m = SliceMemory::new(base, bad);
        assert!(matches!(
            check(&m, base + 0x1230),
            Err(RsdpError::ExtendedChecksum { sum: 1, .. })
        ));
        assert_eq!(scan(&m, BIOS_AREA), None);

        let mut bad = mem.clone();
        bad[0x1230 + 10] = bad[0x1230 + 10].wrapping_add(3);
        let m = SliceMemory::new(base, bad);
        assert_eq!(
            check(&m, base + 0x1230),
            Err(RsdpError::Checksum {
                addr: base + 0x1230,
                sum: 3
            })
        );
        assert_eq!(
            check(&m, base + 0x1240),
            Err(RsdpError::Signature(base + 0x1240))
        );
        assert_eq!(check(&m, 0x1000), Err(RsdpError::OutOfRange(0x1000)));
    }

    #[test]
    fn revision_0_has_only_the_first_checksum() {
        let mut b = rsdp_v2();
        b[15] = 0;
        let s1: u32 = b[..8].iter().chain(&b[9..20]).map(|&x| u32::from(x)).sum();
        b[8] = ((256 - s1 % 256) % 256) as u8;
        // Only 20 bytes in memory: a revision-0 RSDP must not need more.
        let m = SliceMemory::new(0xf_0000, b[..20].to_vec());
        let r = check(&m, 0xf_0000).unwrap();
        assert_eq!(r.revision, 0);
        assert_eq!({ r.rsdt_address }, 0x7fe_1234);
    }
}
