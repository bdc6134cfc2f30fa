//! The payload `pvh wrap` embeds in the zero-page stub: a bzImage, an
//! optional initrd and an optional default command line, described by one
//! header at a fixed physical address.
//!
//! Shared by the writer (`pvh wrap`, on the host), the reader (the stub, in
//! the guest) and `pvh inspect`, so the three agree by construction.
//!
//! Version 2 adds the subarch policy the image was wrapped with
//! (`pvh wrap --subarch`), so a wrapped image keeps it under any
//! hypervisor; version 1 headers are still read (policy PC).
//!
//! Layout of a wrapped image (all addresses physical, every range inside
//! the ELF's `PT_LOAD` segments, so any PVH loader places them):
//!
//! ```text
//! PAYLOAD_ADDR  PayloadHeader (80 bytes)
//!               command line, NUL-terminated          (optional)
//!   page-aligned initrd                                (optional)
//!   ...         bzImage setup sectors | protected-mode code
//!                                     ^ aligned to the kernel's
//!                                       kernel_alignment, so a relocatable
//!                                       kernel can run where it was loaded
//! ```
//!
//! The header stores absolute addresses, not offsets: the stub reads it
//! where the loader put it and needs no arithmetic beyond range checks.

use crate::memory::{PhysRead, read_obj};
use crate::zeropage::SubarchPolicy;
use core::mem::{offset_of, size_of};
use core::ops::Range;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Where the header lives: the stub (linked below it) looks here.
pub use crate::machine::PAYLOAD_ADDR;
/// Identifies a payload header.
pub const PAYLOAD_MAGIC: [u8; 8] = *b"PVHWRAP\0";
/// The header version this crate writes (it reads 1 and 2).
pub const PAYLOAD_VERSION: u32 = 2;
/// The oldest header version this crate reads.
pub const PAYLOAD_MIN_VERSION: u32 = 1;
/// Alignment of the initrd inside the payload.
pub const INITRD_ALIGN: u64 = 0x1000;

/// The payload header (little-endian, 80 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PayloadHeader {
    /// [`PAYLOAD_MAGIC`].
    pub magic: [u8; 8],
    /// [`PAYLOAD_VERSION`].
    pub version: u32,
    /// `size_of::<PayloadHeader>()` when written; readers accept larger
    /// (newer) headers.
    pub header_size: u32,
    /// Bytes from the header's address to the end of the last part.
    pub total_size: u64,
    /// Physical address of the whole bzImage (setup sectors first).
    pub kernel_addr: u64,
    /// Size of the bzImage.
    pub kernel_size: u64,
    /// Physical address of the initrd, 0 if none.
    pub initrd_addr: u64,
    /// Size of the initrd.
    pub initrd_size: u64,
    /// Physical address of the default command line (NUL-terminated), 0 if
    /// none.
    pub cmdline_addr: u64,
    /// Length of the command line without its NUL.
    pub cmdline_size: u64,
    /// Reserved, zero.
    pub flags: u32,
    /// Version 2: the `hardware_subarch` the stub gives the kernel, 0 (PC)
    /// or 2 (XEN, with the start_info's address as its data); version 1:
    /// reserved, and the policy is PC.
    pub subarch: u32,
}

const _: () = {
    assert!(size_of::<PayloadHeader>() == 80);
    assert!(offset_of!(PayloadHeader, magic) == 0);
    assert!(offset_of!(PayloadHeader, version) == 8);
    assert!(offset_of!(PayloadHeader, header_size) == 12);
    assert!(offset_of!(PayloadHeader, total_size) == 16);
    assert!(offset_of!(PayloadHeader, kernel_addr) == 24);
    assert!(offset_of!(PayloadHeader, kernel_size) == 32);
    assert!(offset_of!(PayloadHeader, initrd_addr) == 40);
    assert!(offset_of!(PayloadHeader, initrd_size) == 48);
    assert!(offset_of!(PayloadHeader, cmdline_addr) == 56);
    assert!(offset_of!(PayloadHeader, cmdline_size) == 64);
    assert!(offset_of!(PayloadHeader, flags) == 72);
    assert!(offset_of!(PayloadHeader, subarch) == 76);
};

/// Why a payload header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The header could not be read at its address.
    #[error("payload header at {0:#x} is outside memory")]
    Unreadable(u64),
    /// The version is not one this reader knows.
    #[error("payload version {found} is not supported (expected 1 to {expected})")]
    Version {
        /// The header's version.
        found: u32,
        /// [`PAYLOAD_VERSION`].
        expected: u32,
    },
    /// A version-2 header names a subarch the stub does not apply.
    #[error("payload subarch {0} is not supported (0 for PC, 2 for XEN)")]
    Subarch(u32),
    /// `header_size` is smaller than the header.
    #[error("payload header_size {0} is smaller than {min}", min = size_of::<PayloadHeader>())]
    HeaderSize(u32),
    /// A part lies outside `header..header+total_size`, or wraps.
    #[error(
        "payload {part} at {addr:#x}+{size:#x} is outside the {total:#x}-byte payload at {base:#x}"
    )]
    OutOfPayload {
        /// Which part.
        part: &'static str,
        /// Its address.
        addr: u64,
        /// Its size.
        size: u64,
        /// The header's address.
        base: u64,
        /// `total_size`.
        total: u64,
    },
    /// The payload has no kernel.
    #[error("payload has no kernel (kernel_size is 0)")]
    NoKernel,
}

/// A checked payload: the ranges of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The whole payload, header first.
    pub whole: Range<u64>,
    /// The bzImage.
    pub kernel: Range<u64>,
    /// The initrd, if any.
    pub initrd: Option<Range<u64>>,
    /// The default command line without its NUL, if any.
    pub cmdline: Option<Range<u64>>,
    /// The subarch policy the image was wrapped with.
    pub subarch: SubarchPolicy,
}

impl PayloadHeader {
    /// Checks a header found at `base` and returns its parts' ranges.
    pub fn check(&self, base: u64) -> Result<Payload, PayloadError> {
        if !(PAYLOAD_MIN_VERSION..=PAYLOAD_VERSION).contains(&self.version) {
            return Err(PayloadError::Version {
                found: self.version,
                expected: PAYLOAD_VERSION,
            });
        }
        let subarch = match self.version {
            1 => SubarchPolicy::Pc,
            _ => SubarchPolicy::from_hardware_subarch(self.subarch)
                .ok_or(PayloadError::Subarch(self.subarch))?,
        };
        if (self.header_size as usize) < size_of::<Self>() {
            return Err(PayloadError::HeaderSize(self.header_size));
        }
        let total = self.total_size;
        let part = |part: &'static str, addr: u64, size: u64| {
            let err = PayloadError::OutOfPayload {
                part,
                addr,
                size,
                base,
                total,
            };
            let end = addr.checked_add(size).ok_or(err)?;
            let whole_end = base.checked_add(total).ok_or(err)?;
            if addr < base || end > whole_end {
                return Err(err);
            }
            Ok(addr..end)
        };
        part("header", base, u64::from(self.header_size))?;
        if self.kernel_size == 0 {
            return Err(PayloadError::NoKernel);
        }
        let kernel = part("kernel", self.kernel_addr, self.kernel_size)?;
        let initrd = match self.initrd_addr {
            0 => None,
            addr => Some(part("initrd", addr, self.initrd_size)?),
        };
        let cmdline = match self.cmdline_addr {
            0 => None,
            // The NUL must be inside the payload too.
            addr => {
                let with_nul = self.cmdline_size.saturating_add(1);
                let r = part("cmdline", addr, with_nul)?;
                Some(r.start..r.end - 1)
            }
        };
        Ok(Payload {
            whole: base..base + total,
            kernel,
            initrd,
            cmdline,
            subarch,
        })
    }
}

/// Reads the payload header at `addr`: `Ok(None)` when there is none (the
/// magic is absent), an error when there is one but it is unusable.
pub fn read_payload<M: PhysRead + ?Sized>(
    mem: &M,
    addr: u64,
) -> Result<Option<(PayloadHeader, Payload)>, PayloadError> {
    let header: PayloadHeader = read_obj(mem, addr).map_err(|_| PayloadError::Unreadable(addr))?;
    if header.magic != PAYLOAD_MAGIC {
        return Ok(None);
    }
    let payload = header.check(addr)?;
    Ok(Some((header, payload)))
}

/// Where `pvh wrap` puts each part, from the sizes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The header (= [`PAYLOAD_ADDR`] for images made by `pvh wrap`).
    pub header: u64,
    /// The command line (right after the header), if any.
    pub cmdline: Option<u64>,
    /// The initrd (page-aligned), if any.
    pub initrd: Option<u64>,
    /// The bzImage: placed so that its protected-mode code starts on a
    /// `kernel_alignment` boundary.
    pub kernel: u64,
    /// The protected-mode code: `kernel + setup_size`.
    pub kernel_code: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Why a layout cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The kernel alignment is not a power of two.
    #[error("kernel alignment {0:#x} is not a power of two")]
    Alignment(u64),
    /// The parts do not fit below 4 GiB.
    #[error("payload of these sizes does not fit below 4 GiB")]
    TooLarge,
}

/// The sizes a [`Layout`] is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Whole bzImage.
    pub kernel: u64,
    /// Setup sectors at its start (`(setup_sects + 1) * 512`).
    pub setup: u64,
    /// The kernel's `kernel_alignment`.
    pub kernel_align: u64,
    /// Initrd bytes, if any.
    pub initrd: Option<u64>,
    /// Command line bytes without NUL, if any.
    pub cmdline: Option<u64>,
}

impl Layout {
    /// Lays the parts out from `header` upwards. Everything stays below
    /// 4 GiB, where every PVH loader can place it.
    pub fn plan(header: u64, sizes: &Sizes) -> Result<Self, LayoutError> {
        if !sizes.kernel_align.is_power_of_two() {
            return Err(LayoutError::Alignment(sizes.kernel_align));
        }
        let up = |v: u64, a: u64| v.checked_add(a - 1).map(|v| v & !(a - 1));
        let add = |a: u64, b: u64| a.checked_add(b).ok_or(LayoutError::TooLarge);
        let mut at = add(header, size_of::<PayloadHeader>() as u64)?;
        let cmdline = match sizes.cmdline {
            Some(len) => {
                let addr = at;
                at = add(at, add(len, 1)?)?;
                Some(addr)
            }
            None => None,
        };
        let initrd = match sizes.initrd {
            Some(len) => {
                let addr = up(at, INITRD_ALIGN).ok_or(LayoutError::TooLarge)?;
                at = add(addr, len)?;
                Some(addr)
            }
            None => None,
        };
        let kernel_code =
            up(add(at, sizes.setup)?, sizes.kernel_align).ok_or(LayoutError::TooLarge)?;
        let kernel = kernel_code - sizes.setup;
        let end = add(kernel, sizes.kernel)?;
        if end > 1 << 32 {
            return Err(LayoutError::TooLarge);
        }
        Ok(Self {
            header,
            cmdline,
            initrd,
            kernel,
            kernel_code,
            end,
        })
    }

    /// The header describing this layout, with the subarch policy the stub
    /// is to apply.
    pub fn header_for(&self, sizes: &Sizes, subarch: SubarchPolicy) -> PayloadHeader {
        PayloadHeader {
            magic: PAYLOAD_MAGIC,
            version: PAYLOAD_VERSION,
            header_size: size_of::<PayloadHeader>() as u32,
            total_size: self.end - self.header,
            kernel_addr: self.kernel,
            kernel_size: sizes.kernel,
            initrd_addr: self.initrd.unwrap_or(0),
            initrd_size: sizes.initrd.unwrap_or(0),
            cmdline_addr: self.cmdline.unwrap_or(0),
            cmdline_size: sizes.cmdline.unwrap_or(0),
            flags: 0,
            subarch: subarch.hardware_subarch().0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;
    use proptest::prelude::*;

    fn sizes() -> Sizes {
        Sizes {
            kernel: 0x80_0000 + 0x4400,
            setup: 0x4400,
            kernel_align: 0x20_0000,
            initrd: Some(0x1234),
            cmdline: Some(11),
        }
    }

    #[test]
    fn plan_places_parts_in_order_and_aligns_the_code() {
        let l = Layout::plan(PAYLOAD_ADDR, &sizes()).unwrap();
        assert_eq!(l.cmdline, Some(0x20_0050));
        assert_eq!(l.initrd, Some(0x20_1000));
        // initrd ends at 0x202234; code must start at the next 2 MiB boundary
        // with room for the 0x4400 setup bytes before it.
        assert_eq!(l.kernel_code, 0x40_0000);
        assert_eq!(l.kernel, 0x40_0000 - 0x4400);
        assert_eq!(l.end, 0x40_0000 + 0x80_0000);
    }

    #[test]
    fn header_round_trips_through_memory() {
        let s = sizes();
        let l = Layout::plan(PAYLOAD_ADDR, &s).unwrap();
        let h = l.header_for(&s, SubarchPolicy::Pc);
        let mut bytes = vec![0u8; 0x100];
        bytes[..80].copy_from_slice(h.as_bytes());
        let mem = SliceMemory::new(PAYLOAD_ADDR, bytes);
        let (read, p) = read_payload(&mem, PAYLOAD_ADDR).unwrap().unwrap();
        assert_eq!(read, h);
        assert_eq!(p.kernel, 0x3f_bc00..0xc0_0000);
        assert_eq!(p.initrd, Some(0x20_1000..0x20_2234));
        assert_eq!(p.cmdline, Some(0x20_0050..0x20_005b));
        assert_eq!(p.whole, PAYLOAD_ADDR..0xc0_0000);
    }

    #[test]
    fn subarch_round_trips_and_version_1_means_pc() {
        let s = sizes();
        let l = Layout::plan(PAYLOAD_ADDR, &s).unwrap();
        let xen = l.header_for(&s, SubarchPolicy::Xen);
        // Offset 76 (asserted above), little-endian: HardwareSubarch XEN = 2.
        assert_eq!(&xen.as_bytes()[76..80], &[2, 0, 0, 0]);
        assert_eq!(xen.version, 2);
        assert_eq!(xen.check(PAYLOAD_ADDR).unwrap().subarch, SubarchPolicy::Xen);
        assert_eq!(
            l.header_for(&s, SubarchPolicy::Pc)
                .check(PAYLOAD_ADDR)
                .unwrap()
                .subarch,
            SubarchPolicy::Pc
        );
        // A version-1 header (written before the field existed) keeps its
        // reserved word ignored: PC, whatever it holds.
        let mut v1 = xen;
        v1.version = 1;
        v1.subarch = 0xdead;
        assert_eq!(v1.check(PAYLOAD_ADDR).unwrap().subarch, SubarchPolicy::Pc);
    }

    #[test]
    fn no_magic_is_no_payload() {
        let mem = SliceMemory::new(PAYLOAD_ADDR, vec![0u8; 0x100]);
        assert_eq!(read_payload(&mem, PAYLOAD_ADDR), Ok(None));
        let mem = SliceMemory::new(0, vec![0u8; 0x10]);
        assert_eq!(
            read_payload(&mem, PAYLOAD_ADDR),
            Err(PayloadError::Unreadable(PAYLOAD_ADDR))
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let s = sizes();
        let good = Layout::plan(PAYLOAD_ADDR, &s)
            .unwrap()
            .header_for(&s, SubarchPolicy::Pc);
        let mut h = good;
        h.version = 3;
        assert_eq!(
            h.check(PAYLOAD_ADDR),
            Err(PayloadError::Version {
                found: 3,
                expected: 2
            })
        );
        let mut h = good;
        h.version = 0;
        assert!(matches!(
            h.check(PAYLOAD_ADDR),
            Err(PayloadError::Version { found: 0, .. })
        ));
        let mut h = good;
        h.subarch = 1;
        assert_eq!(h.check(PAYLOAD_ADDR), Err(PayloadError::Subarch(1)));
        let mut h = good;
        h.header_size = 8;
        assert_eq!(h.check(PAYLOAD_ADDR), Err(PayloadError::HeaderSize(8)));
        let mut h = good;
        h.kernel_size = 0;
        assert_eq!(h.check(PAYLOAD_ADDR), Err(PayloadError::NoKernel));
        let mut h = good;
        h.initrd_addr = u64::MAX;
        assert!(matches!(
            h.check(PAYLOAD_ADDR),
            Err(PayloadError::OutOfPayload { part: "initrd", .. })
        ));
        let mut h = good;
        h.total_size = 0x100;
        assert!(matches!(
            h.check(PAYLOAD_ADDR),
            Err(PayloadError::OutOfPayload { part: "kernel", .. })
        ));
        assert!(matches!(
            good.check(u64::MAX - 10),
            Err(PayloadError::OutOfPayload { part: "header", .. })
        ));
    }

    #[test]
    fn bad_alignment_and_oversize_are_errors() {
        let mut s = sizes();
        s.kernel_align = 3;
        assert_eq!(
            Layout::plan(PAYLOAD_ADDR, &s),
            Err(LayoutError::Alignment(3))
        );
        let mut s = sizes();
        s.initrd = Some(1 << 33);
        assert_eq!(Layout::plan(PAYLOAD_ADDR, &s), Err(LayoutError::TooLarge));
    }

    proptest! {
        // Whatever the sizes, a plan keeps parts disjoint, in order,
        // aligned, and its header checks back to the same ranges.
        #[test]
        fn plans_are_consistent(
            kernel in 0x1000u64..0x100_0000, setup_sects in 1u64..64, align_log in 12u32..25,
            initrd in proptest::option::of(0u64..0x100_0000), cmdline in proptest::option::of(0u64..4096),
        ) {
            let setup = (setup_sects + 1) * 512;
            let s = Sizes { kernel: kernel + setup, setup, kernel_align: 1 << align_log, initrd, cmdline };
            let l = Layout::plan(PAYLOAD_ADDR, &s).unwrap();
            prop_assert_eq!(l.kernel_code % (1 << align_log), 0);
            prop_assert_eq!(l.kernel_code - l.kernel, setup);
            let mut floor = PAYLOAD_ADDR + 80;
            if let (Some(a), Some(n)) = (l.cmdline, cmdline) { prop_assert!(a >= floor); floor = a + n + 1; }
            if let (Some(a), Some(n)) = (l.initrd, initrd) {
                prop_assert!(a >= floor && a % INITRD_ALIGN == 0); floor = a + n;
            }
            prop_assert!(l.kernel >= floor);
            let p = l.header_for(&s, SubarchPolicy::Pc).check(PAYLOAD_ADDR).unwrap();
            prop_assert_eq!(p.kernel, l.kernel..l.end);
        }
    }
}
