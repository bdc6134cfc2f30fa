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

/// A legacy `.lzma` (LZMA-alone) stream of `data`, as Linux's
/// CONFIG_KERNEL_LZMA builds it.
fn lzma_alone(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let options = xz2::stream::LzmaOptions::new_preset(1).unwrap();
    let stream = xz2::stream::Stream::new_lzma_encoder(&options).unwrap();
    let mut e = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_stream_cut_short_is_an_error_in_every_format() {
    // Big enough that half the stream holds whole blocks of output: the
    // decoder has made progress when the input runs out.
    let elf: Vec<u8> = simple_elf()
        .build()
        .into_iter()
        .chain((0..256 * 1024u32).map(|i| (i * 7 % 251) as u8))
        .collect();
    for (compression, packed) in [
        (Compression::Gzip, gzip(&elf)),
        (Compression::Xz, xz(&elf)),
        (Compression::Lzma, lzma_alone(&elf)),
        (Compression::Zstd, zstd(&elf)),
    ] {
        let whole = with_size(packed.clone(), elf.len());
        assert_eq!(
            decompress(compression, &whole).unwrap(),
            elf,
            "{compression:?}"
        );
        for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
            let payload = with_size(packed[..cut].to_vec(), elf.len());
            match decompress(compression, &payload) {
                Err(LoadError::Decompress { format, reason }) => {
                    assert_eq!(format, compression.name());
                    assert!(!reason.is_empty());
                }
                Ok(out) => panic!("{compression:?} cut at {cut}: {} bytes out", out.len()),
                Err(e) => panic!("{compression:?} cut at {cut}: {e}"),
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// A mutated or cut stream with any announced size: a result that is
    /// exactly the announced size, or a typed error; never a panic, never
    /// more output than announced.
    #[test]
    fn mutated_streams_give_the_announced_size_or_an_error(
        format in 0usize..4,
        muts in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..4),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        announced in 0usize..(64 << 10),
    ) {
        let data: Vec<u8> = (0..16 * 1024u32).map(|i| (i * 31 % 253) as u8).collect();
        let (compression, mut packed) = [
            (Compression::Gzip, gzip(&data)),
            (Compression::Xz, xz(&data)),
            (Compression::Lzma, lzma_alone(&data)),
            (Compression::Zstd, zstd(&data)),
        ][format].clone();
        for (at, byte) in muts {
            let i = at.index(packed.len());
            packed[i] ^= byte;
        }
        let keep = packed.len() - cut.index(packed.len() / 4 + 1);
        packed.truncate(keep);
        match decompress(compression, &with_size(packed, announced)) {
            Ok(out) => proptest::prop_assert_eq!(out.len(), announced),
            Err(LoadError::Decompress { .. } | LoadError::DecompressedTooLarge { .. }) => {}
            Err(e) => proptest::prop_assert!(false, "unexpected error: {e}"),
        }
    }
}

#[test]
fn an_output_over_the_prefault_chunk_decodes_exactly_in_every_format() {
    // 12 MiB: the output buffer is faulted in ahead of the decoder, 2 MiB
    // at a time, by a second thread (image::with_prefault) while the
    // decoder writes the same pages. Every byte must be the decoder's.
    let data: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x0f)
        .collect();
    for (compression, packed) in [
        (Compression::Gzip, gzip(&data)),
        (Compression::Xz, xz(&data)),
        (Compression::Zstd, zstd(&data)),
    ] {
        let out = decompress(compression, &with_size(packed, data.len())).unwrap();
        assert!(out == data, "{compression:?}: output differs");
    }
}
