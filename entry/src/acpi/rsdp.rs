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
#[non_exhaustive]
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
    let mut addr = range.start.checked_add(15)? & !15;
    while addr.checked_add(RSDP_V1_LEN as u64)? <= range.end {
        if check(mem, addr).is_ok() {
            return Some(addr);
        }
        addr += 16;
    }
    None
}

/// Where the BIOS data area keeps the EBDA's real-mode segment (40:0Eh).
pub const EBDA_POINTER: u64 = 0x40e;
/// How much of the EBDA the ACPI specification (5.2.5.1) says to search.
pub const EBDA_SEARCH_LEN: u64 = 1024;

/// The RSDP as an ACPI 1.0-era OS finds it without help (ACPI 5.2.5.1):
/// the first KiB of the EBDA (if the pointer at 40:0Eh names one below
/// 640 KiB), then [`BIOS_AREA`]. What a guest does when a start_info's
/// `rsdp_paddr` is 0 although the hypervisor built tables (Firecracker).
pub fn scan_legacy<M: PhysRead + ?Sized>(mem: &M) -> Option<u64> {
    let mut segment = [0u8; 2];
    if mem.read(EBDA_POINTER, &mut segment).is_ok() {
        let ebda = u64::from(u16::from_le_bytes(segment)) << 4;
        if (0x400..0xa_0000).contains(&ebda) {
            if let Some(found) = scan(mem, ebda..ebda + EBDA_SEARCH_LEN) {
                return Some(found);
            }
        }
    }
    scan(mem, BIOS_AREA)
}

/// How a guest came by its RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// The start_info's `rsdp_paddr`.
    StartInfo,
    /// [`scan_legacy`], because `rsdp_paddr` was 0.
    Scan,
}

impl FoundBy {
    /// `"start_info"` or `"scan"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StartInfo => "start_info",
            Self::Scan => "scan",
        }
    }
}

/// The RSDP a guest should use: `rsdp_paddr` when the hypervisor passed
/// one (not checked here: see [`check`]), else the legacy scan.
pub fn locate<M: PhysRead + ?Sized>(mem: &M, rsdp_paddr: Option<u64>) -> Option<(u64, FoundBy)> {
    match rsdp_paddr {
        Some(addr) => Some((addr, FoundBy::StartInfo)),
        None => scan_legacy(mem).map(|addr| (addr, FoundBy::Scan)),
    }
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
    fn legacy_scan_tries_the_ebda_first_then_the_bios_area() {
        // 0..1 MiB of zeros; an RSDP in the BIOS area (as Firecracker
        // leaves it at 0xe0000 with rsdp_paddr = 0).
        let mut mem = vec![0u8; 0x10_0000];
        mem[0xe_0000..0xe_0024].copy_from_slice(&rsdp_v2());
        let m = SliceMemory::new(0, mem.clone());
        assert_eq!(scan_legacy(&m), Some(0xe_0000));
        assert_eq!(locate(&m, None), Some((0xe_0000, FoundBy::Scan)));
        // rsdp_paddr wins, checked or not.
        assert_eq!(locate(&m, Some(0x1234)), Some((0x1234, FoundBy::StartInfo)));
        // An EBDA at 0x9fc00 (segment 0x9fc0 at 40:0Eh) with its own RSDP
        // 0x20 bytes in: found before the BIOS area's.
        mem[0x40e..0x410].copy_from_slice(&0x9fc0u16.to_le_bytes());
        mem[0x9_fc20..0x9_fc44].copy_from_slice(&rsdp_v2());
        let m = SliceMemory::new(0, mem.clone());
        assert_eq!(scan_legacy(&m), Some(0x9_fc20));
        // Past the first KiB of the EBDA it does not count.
        mem[0x9_fc20..0x9_fc44].fill(0);
        mem[0x9_fc00 + 0x400..0x9_fc00 + 0x424].copy_from_slice(&rsdp_v2());
        let m = SliceMemory::new(0, mem.clone());
        assert_eq!(scan_legacy(&m), Some(0xe_0000));
        // Nothing anywhere: none (and a pointer into nowhere is harmless).
        mem[0xe_0000..0xe_0024].fill(0);
        mem[0x40e..0x410].copy_from_slice(&0xffffu16.to_le_bytes());
        let m = SliceMemory::new(0, mem);
        assert_eq!(scan_legacy(&m), None);
        assert_eq!(locate(&m, None), None);
        // Memory that ends before the BIOS area.
        let m = SliceMemory::new(0, vec![0u8; 0x1000]);
        assert_eq!(scan_legacy(&m), None);
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
