//! Recognising compressed modules and estimating their decompression
//! headroom (Xen's `boot_module.headroom`).
//!
//! In-place decompression writes the output starting `headroom` bytes below
//! the compressed input, so the output end never overtakes the input still
//! to be read. The room needed is the growth (`out - in`) plus some slack
//! for the decoder's block that is read ahead. The magic numbers themselves
//! come from [`pvh_bootparams::Compression::detect`].

use pvh_bootparams::{BzImage, Compression};

/// Slack added to the growth: more than one block of any of the formats as
/// the kernel uses them (deflate 64 KiB, zstd 128 KiB, xz chunks below
/// that), so a decoder reading one block ahead stays clear of its output.
pub const SLACK: u64 = 256 << 10;

/// When the decompressed size is not stored in the stream (xz, zstd, lzma,
/// bzip2, lzo, lz4), assume it is this many times the compressed size: a
/// Debian kernel's xz payload expands about 3.5x, an initramfs 3-4x.
pub const ASSUMED_RATIO: u64 = 4;

/// Headroom is handed out in whole pages.
const PAGE: u64 = 4096;

/// The compression of `bytes` and its headroom estimate:
/// - a bzImage: its payload's compression; headroom `init_size - len`
///   (the kernel's own statement of how much memory it needs from its load
///   address to decompress itself), page-aligned;
/// - a gzip stream: the trailer's ISIZE (decompressed size mod 2^32) is the
///   output size; headroom `out - in + SLACK`, page-aligned;
/// - another compressed stream: output assumed `ASSUMED_RATIO * in`;
///   headroom `out - in + SLACK`, page-aligned;
/// - anything else (ELF, cpio, data): `(None, 0)`.
pub fn headroom(bytes: &[u8]) -> (Option<Compression>, u64) {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if let Ok(bz) = BzImage::parse(bytes) {
        let compression = compressed(bz.compression());
        let init_size = u64::from(bz.header().init_size);
        return (compression, page_align(init_size.saturating_sub(len)));
    }
    let Some(kind) = compressed(Compression::detect(bytes)) else {
        return (None, 0);
    };
    let out = match kind {
        Compression::Gzip => gzip_isize(bytes),
        _ => None,
    }
    .unwrap_or_else(|| len.saturating_mul(ASSUMED_RATIO));
    let growth = out.saturating_sub(len);
    (Some(kind), page_align(growth.saturating_add(SLACK)))
}

/// `Some` for a real compression format.
fn compressed(c: Compression) -> Option<Compression> {
    match c {
        Compression::None | Compression::Unknown => None,
        other => Some(other),
    }
}

/// The gzip trailer's ISIZE (last 4 bytes, little-endian).
fn gzip_isize(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(4).and_then(|s| bytes.get(s..))?;
    let isize = u32::from_le_bytes(tail.try_into().ok()?);
    Some(u64::from(isize))
}

fn page_align(n: u64) -> u64 {
    n.checked_next_multiple_of(PAGE).unwrap_or(!(PAGE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_data_has_no_headroom() {
        assert_eq!(headroom(b"070701 cpio"), (None, 0));
        assert_eq!(headroom(b"\x7fELF\x02\x01\x01"), (None, 0));
        assert_eq!(headroom(&[]), (None, 0));
    }

    #[test]
    fn gzip_uses_the_trailer_size() {
        // 100 bytes, ISIZE = 1 MiB: 1 MiB - 100 + 256 KiB = 1310620 -> 1310720.
        let mut gz = vec![0u8; 100];
        gz[0] = 0x1f;
        gz[1] = 0x8b;
        gz[96..].copy_from_slice(&(1u32 << 20).to_le_bytes());
        assert_eq!(headroom(&gz), (Some(Compression::Gzip), 1_310_720));
    }

    #[test]
    fn bzimage_uses_init_size() {
        // 3 setup sectors (1536 B) + 16 B of kernel with an xz payload at 4.
        let mut img = vec![0u8; 3 * 512];
        img[0x1f1] = 2;
        img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        img[0x200] = 0xeb;
        img[0x201] = 0x6a; // header ends at 0x26c
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&4u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&6u32.to_le_bytes());
        img[0x260..0x264].copy_from_slice(&0x0100_0000u32.to_le_bytes());
        img.extend_from_slice(b"\0\0\0\0\xfd7zXZ\0rest..");
        // 16 MiB - 1552 B, aligned up: 16 MiB exactly.
        assert_eq!(headroom(&img), (Some(Compression::Xz), 0x0100_0000));
    }

    #[test]
    fn xz_and_zstd_use_the_assumed_ratio() {
        // 8192 bytes: 4 * 8192 - 8192 + 262144 = 286720 (already aligned).
        let mut xz = vec![0u8; 8192];
        xz[..6].copy_from_slice(&[0xfd, b'7', b'z', b'X', b'Z', 0]);
        assert_eq!(headroom(&xz), (Some(Compression::Xz), 286_720));
        let mut zst = vec![0u8; 1000];
        zst[..4].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        // 3000 + 262144 = 265144 -> 266240.
        assert_eq!(headroom(&zst), (Some(Compression::Zstd), 266_240));
    }
}
