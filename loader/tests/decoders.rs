//! The payload decoders of pvh-unpack (`pvh_loader::image::decompress`):
//! bounds a hostile stream cannot talk them out of.

mod common;

use common::*;
use pvh_loader::image::{Compression, decompress, decompress_within};
use pvh_loader::{LoadError, unpack};

/// A zstd frame holding `data` (at most 1 KiB) in one raw block, whose
/// header announces a window of 2^(10 + `exponent`) bytes.
fn zstd_frame(window_exponent: u8, data: &[u8]) -> Vec<u8> {
    assert!(data.len() <= 1024);
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header descriptor: no content size, not single-segment (so a
    // window descriptor follows), no checksum, no dictionary.
    f.push(0x00);
    f.push(window_exponent << 3);
    // Block header: last block, raw, `data.len()` bytes.
    let header = ((data.len() as u32) << 3) | 1;
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(data);
    f
}

#[test]
fn zstd_within_the_window_limit_decodes() {
    let data = b"a raw zstd block".repeat(10);
    let payload = with_size(zstd_frame(0, &data), data.len());
    assert_eq!(decompress(Compression::Zstd, &payload).unwrap(), data);
}

#[test]
fn zstd_window_beyond_the_memory_limit_is_refused() {
    // 2^30 bytes of window: over the 256 MiB decoder limit.
    let data = b"x".repeat(100);
    let payload = with_size(zstd_frame(20, &data), data.len());
    match decompress(Compression::Zstd, &payload) {
        Err(LoadError::Decompress {
            format: "zstd",
            reason,
        }) => assert!(!reason.is_empty()),
        other => panic!("expected a refused window, got {other:?}"),
    }
}

#[test]
fn every_format_through_unpack_and_decompress_alike() {
    let elf = simple_elf().build();
    for (compression, packed) in [
        (Compression::Gzip, gzip(&elf)),
        (Compression::Xz, xz(&elf)),
        (Compression::Zstd, zstd(&elf)),
    ] {
        let payload = with_size(packed, elf.len());
        let image = Bz::default().payload(payload.clone()).build();
        let bz = pvh_bootparams::BzImage::parse(&image).unwrap();
        assert_eq!(bz.compression(), compression);
        assert_eq!(unpack(&bz).unwrap(), elf, "{compression:?}");
        assert_eq!(
            decompress(compression, &payload).unwrap(),
            elf,
            "{compression:?}"
        );
        // One byte short of the announced size, and one byte over.
        let short = with_size(payload[..payload.len() - 4].to_vec(), elf.len() + 1);
        assert!(
            decompress(compression, &short).is_err(),
            "{compression:?} short"
        );
        let long = with_size(payload[..payload.len() - 4].to_vec(), elf.len() - 1);
        assert_eq!(
            decompress(compression, &long).unwrap_err(),
            LoadError::DecompressedTooLarge {
                limit: elf.len() as u64 - 1
            },
            "{compression:?} long"
        );
    }
}

#[test]
fn decompression_stops_at_the_guest_ram() {
    let elf = simple_elf().build();
    let n = elf.len() as u64;
    for (compression, packed) in [
        (Compression::Gzip, gzip(&elf)),
        (Compression::Xz, xz(&elf)),
        (Compression::Zstd, zstd(&elf)),
        (Compression::None, elf.clone()),
    ] {
        let payload = match compression {
            Compression::None => packed,
            _ => with_size(packed, elf.len()),
        };
        // Announced (or, uncompressed, actual) size above the guest's RAM:
        // refused before decoding, naming both sizes.
        let e = decompress_within(compression, &payload, n - 1).unwrap_err();
        assert_eq!(
            e,
            LoadError::AnnouncedOverRam {
                announced: n,
                ram: n - 1
            },
            "{compression:?}"
        );
        assert!(e.to_string().contains("nothing was decompressed"), "{e}");
        // Exactly the guest's RAM is enough.
        assert_eq!(decompress_within(compression, &payload, n).unwrap(), elf);
    }
    // The planner unpacks within the guest's RAM: a bzImage whose payload
    // announces 1 GiB is refused for a 512 MiB guest without decoding.
    let image = Bz::default()
        .payload(with_size(gzip(&elf), 1 << 30))
        .build();
    let bz = pvh_bootparams::BzImage::parse(&image).unwrap();
    assert_eq!(
        pvh_loader::unpack_within(&bz, 512 << 20).unwrap_err(),
        LoadError::AnnouncedOverRam {
            announced: 1 << 30,
            ram: 512 << 20
        }
    );
}
