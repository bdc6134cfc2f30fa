//! A bzImage: the setup header it carries, where its protected-mode code
//! and compressed payload are, and checks for the 64-bit boot protocol.

use crate::flags::XLoadFlags;
use crate::setup_header::{BOOT_FLAG, HDRS_MAGIC, SETUP_HEADER_OFFSET, SetupHeader};
use core::mem::size_of;
use zerocopy::{FromZeros, IntoBytes};

/// Why bytes are not a usable bzImage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The image ends before the fixed part of the setup header.
    #[error("image of {len} bytes is too short to hold a setup header (needs {needed})")]
    TooShort {
        /// Length of the image.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// `boot_flag` is not 0xAA55.
    #[error("boot_flag is {0:#06x}, not 0xaa55: not a Linux kernel image")]
    BadBootFlag(u16),
    /// `header` is not "HdrS".
    #[error("setup header magic is {0:#010x}, not \"HdrS\": not a bzImage")]
    NoHdrS(u32),
    /// The boot protocol version is older than required.
    #[error("boot protocol {found:#06x} is older than the required {required:#06x}")]
    ProtocolTooOld {
        /// The image's protocol version.
        found: u16,
        /// The minimum accepted.
        required: u16,
    },
    /// The setup header's declared end (0x202 + byte 0x201) is past the image.
    #[error("setup header ends at {end:#x}, past the {len:#x}-byte image")]
    HeaderPastImage {
        /// Declared end.
        end: usize,
        /// Image length.
        len: usize,
    },
    /// The setup sectors extend past the image.
    #[error("{setup_size:#x} bytes of setup sectors do not fit in the {len:#x}-byte image")]
    SetupPastImage {
        /// `(setup_sects + 1) * 512`.
        setup_size: usize,
        /// Image length.
        len: usize,
    },
    /// `payload_offset`/`payload_length` point outside the protected-mode code.
    #[error("payload at {offset:#x}+{length:#x} is outside the {available:#x}-byte kernel")]
    PayloadOutOfBounds {
        /// `payload_offset`.
        offset: u32,
        /// `payload_length`.
        length: u32,
        /// Bytes of protected-mode code.
        available: usize,
    },
    /// The kernel has no 64-bit entry (`XLF_KERNEL_64` clear).
    #[error("kernel has no 64-bit entry point (XLF_KERNEL_64 clear)")]
    No64BitEntry,
}

/// The compression of a bzImage's payload, recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
    /// lzma (legacy .lzma).
    Lzma,
    /// bzip2.
    Bzip2,
    /// lzo (lzop).
    Lzo,
    /// lz4 (legacy frame).
    Lz4,
    /// Not compressed: an ELF file.
    None,
    /// Unrecognised magic.
    Unknown,
}

impl Compression {
    /// Recognises a compressed stream by its first bytes.
    pub fn detect(payload: &[u8]) -> Self {
        let starts = |magic: &[u8]| payload.starts_with(magic);
        if starts(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Self::Xz
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if starts(&[0x5d, 0, 0]) {
            Self::Lzma
        } else if starts(b"BZh") {
            Self::Bzip2
        } else if starts(&[0x89, b'L', b'Z', b'O']) {
            Self::Lzo
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
            Self::Lz4
        } else if starts(b"\x7fELF") {
            Self::None
        } else {
            Self::Unknown
        }
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Lzma => "lzma",
            Self::Bzip2 => "bzip2",
            Self::Lzo => "lzo",
            Self::Lz4 => "lz4",
            Self::None => "none",
            Self::Unknown => "unknown",
        }
    }
}

/// A parsed bzImage, borrowing the image bytes.
#[derive(Debug, Clone, Copy)]
pub struct BzImage<'a> {
    bytes: &'a [u8],
    header: SetupHeader,
    header_end: usize,
    setup_size: usize,
}

impl<'a> BzImage<'a> {
    /// The oldest protocol `parse` accepts: 2.08 has every field this
    /// workspace reads (`payload_offset`, `payload_length`, `cmdline_size`).
    pub const MIN_PROTOCOL: u16 = 0x0208;
    /// The oldest protocol with a 64-bit entry (`xloadflags`): 2.12.
    pub const MIN_64BIT_PROTOCOL: u16 = 0x020c;

    /// Parses and checks the setup header of a bzImage.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        // The fixed part: everything up to and including `version`.
        let fixed_end = 0x208;
        let len = bytes.len();
        let Some(fixed) = bytes.get(..fixed_end) else {
            return Err(ImageError::TooShort {
                len,
                needed: fixed_end,
            });
        };
        let boot_flag = u16::from_le_bytes([fixed[0x1fe], fixed[0x1ff]]);
        if boot_flag != BOOT_FLAG {
            return Err(ImageError::BadBootFlag(boot_flag));
        }
        let magic = u32::from_le_bytes([fixed[0x202], fixed[0x203], fixed[0x204], fixed[0x205]]);
        if magic != HDRS_MAGIC {
            return Err(ImageError::NoHdrS(magic));
        }
        let found = u16::from_le_bytes([fixed[0x206], fixed[0x207]]);
        if found < Self::MIN_PROTOCOL {
            return Err(ImageError::ProtocolTooOld {
                found,
                required: Self::MIN_PROTOCOL,
            });
        }
        // The header's real length is in the jump instruction's offset byte.
        let header_end = 0x202 + usize::from(fixed[0x201]);
        let Some(declared) = bytes.get(SETUP_HEADER_OFFSET..header_end) else {
            return Err(ImageError::HeaderPastImage {
                end: header_end,
                len,
            });
        };
        // Copy what the image declares; a newer kernel's longer header is
        // cut to what this crate knows, an older one's shorter header is
        // zero-extended.
        let mut header = SetupHeader::new_zeroed();
        let known = declared.len().min(size_of::<SetupHeader>());
        header.as_mut_bytes()[..known].copy_from_slice(&declared[..known]);
        let setup_size = (header.setup_sectors() as usize + 1) * 512;
        if setup_size > len {
            return Err(ImageError::SetupPastImage { setup_size, len });
        }
        let image = Self {
            bytes,
            header,
            header_end,
            setup_size,
        };
        image.payload_range()?;
        Ok(image)
    }

    /// The setup header as the image carries it.
    pub fn header(&self) -> &SetupHeader {
        &self.header
    }

    /// The exact header bytes a loader copies into the zero page at 0x1f1
    /// (from 0x1f1 to `0x202 + image[0x201]`).
    pub fn header_bytes(&self) -> &'a [u8] {
        self.bytes
            .get(SETUP_HEADER_OFFSET..self.header_end)
            .unwrap_or(&[])
    }

    /// File offset of the protected-mode code: `(setup_sects + 1) * 512`.
    pub fn setup_size(&self) -> usize {
        self.setup_size
    }

    /// The protected-mode code (what is loaded at the kernel's address).
    pub fn kernel(&self) -> &'a [u8] {
        self.bytes.get(self.setup_size..).unwrap_or(&[])
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn payload_range(&self) -> Result<(usize, usize), ImageError> {
        let (offset, length) = (self.header.payload_offset, self.header.payload_length);
        let available = self.kernel_len();
        let start = offset as usize;
        match start.checked_add(length as usize) {
            Some(end) if end <= available => Ok((start, end)),
            _ => Err(ImageError::PayloadOutOfBounds {
                offset,
                length,
                available,
            }),
        }
    }

    fn kernel_len(&self) -> usize {
        self.bytes.len().saturating_sub(self.setup_size)
    }

    /// The compressed payload (the vmlinux inside), empty if the image
    /// declares none.
    pub fn payload(&self) -> &'a [u8] {
        let kernel = self.kernel();
        self.payload_range()
            .ok()
            .and_then(|(s, e)| kernel.get(s..e))
            .unwrap_or(&[])
    }

    /// The payload's compression.
    pub fn compression(&self) -> Compression {
        Compression::detect(self.payload())
    }

    /// Checks what the 64-bit boot protocol needs: protocol 2.12+ and
    /// `XLF_KERNEL_64`.
    pub fn check_64bit_boot(&self) -> Result<(), ImageError> {
        let found = self.header.version;
        if found < Self::MIN_64BIT_PROTOCOL {
            return Err(ImageError::ProtocolTooOld {
                found,
                required: Self::MIN_64BIT_PROTOCOL,
            });
        }
        if !self.header.xload_flags().contains(XLoadFlags::KERNEL_64) {
            return Err(ImageError::No64BitEntry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal, synthetic bzImage with `setup_sects` sectors of setup and
    /// `kernel` bytes of protected-mode code.
    pub(crate) fn fake_image(version: u16, xloadflags: u16, kernel: &[u8]) -> Vec<u8> {
        let setup_sects = 2u8;
        let mut img = vec![0u8; (usize::from(setup_sects) + 1) * 512];
        img[0x1f1] = setup_sects;
        img[0x1fe..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
        img[0x200] = 0xeb;
        img[0x201] = (0x26c - 0x202) as u8;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        img[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&4u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&6u32.to_le_bytes());
        img.extend_from_slice(kernel);
        img
    }

    #[test]
    fn parses_a_synthetic_image() {
        let img = fake_image(0x020f, 1, b"\0\0\0\0\xfd7zXZ\0rest");
        let bz = BzImage::parse(&img).unwrap();
        assert_eq!(bz.setup_size(), 3 * 512);
        assert_eq!(bz.header().protocol(), (2, 15));
        assert_eq!(bz.header_bytes().len(), 0x26c - 0x1f1);
        assert_eq!(bz.compression(), Compression::Xz);
        assert_eq!(bz.payload(), b"\xfd7zXZ\0");
        bz.check_64bit_boot().unwrap();
    }

    #[test]
    fn typed_errors() {
        let good = fake_image(0x020f, 1, b"0123456789");
        assert!(matches!(
            BzImage::parse(&good[..0x100]),
            Err(ImageError::TooShort { .. })
        ));
        let mut bad = good.clone();
        bad[0x1fe] = 0;
        assert!(matches!(
            BzImage::parse(&bad),
            Err(ImageError::BadBootFlag(0xaa00))
        ));
        let mut bad = good.clone();
        bad[0x202] = b'X';
        assert!(matches!(BzImage::parse(&bad), Err(ImageError::NoHdrS(_))));
        let old = fake_image(0x0204, 1, b"0123456789");
        assert_eq!(
            BzImage::parse(&old).unwrap_err(),
            ImageError::ProtocolTooOld {
                found: 0x0204,
                required: 0x0208
            }
        );
        let mut bad = good.clone();
        bad.truncate(0x210);
        assert!(matches!(
            BzImage::parse(&bad),
            Err(ImageError::HeaderPastImage { .. })
        ));
        let mut bad = good.clone();
        bad[0x1f1] = 200;
        assert!(matches!(
            BzImage::parse(&bad),
            Err(ImageError::SetupPastImage { .. })
        ));
        let mut bad = good.clone();
        bad[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            BzImage::parse(&bad),
            Err(ImageError::PayloadOutOfBounds { .. })
        ));
        let no64 = fake_image(0x020f, 0, b"0123456789");
        assert_eq!(
            BzImage::parse(&no64).unwrap().check_64bit_boot(),
            Err(ImageError::No64BitEntry)
        );
        let v211 = fake_image(0x020b, 1, b"0123456789");
        assert!(matches!(
            BzImage::parse(&v211).unwrap().check_64bit_boot(),
            Err(ImageError::ProtocolTooOld {
                required: 0x020c,
                ..
            })
        ));
    }

    #[test]
    fn short_header_is_zero_extended() {
        let mut img = fake_image(0x020f, 1, b"0123456789");
        img[0x201] = 0x30; // header ends at 0x232: before xloadflags
        let bz = BzImage::parse(&img).unwrap();
        assert_eq!({ bz.header().xloadflags }, 0);
        assert_eq!(bz.header_bytes().len(), 0x232 - 0x1f1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 5000 }))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            if let Ok(bz) = BzImage::parse(&bytes) {
                let _ = (bz.payload(), bz.kernel(), bz.header_bytes(), bz.check_64bit_boot());
            }
        }

        #[test]
        fn mutated_headers_never_panic(
            pos in 0x1f1usize..0x270, val in proptest::num::u8::ANY, pos2 in 0x1f1usize..0x270, val2 in proptest::num::u8::ANY
        ) {
            let mut img = fake_image(0x020f, 3, b"0123456789abcdef");
            img[pos] = val;
            img[pos2] = val2;
            if let Ok(bz) = BzImage::parse(&img) {
                proptest::prop_assert!(bz.payload().len() <= bz.kernel().len());
                let _ = bz.check_64bit_boot();
            }
        }
    }
}
