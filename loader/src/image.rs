//! Recognising kernel images, and unpacking a bzImage's payload to the
//! vmlinux ELF inside it (the Xen toolstack's "pvh-unpack").

use crate::elf::{ElfImage, is_elf};
use crate::error::LoadError;
use pvh_bootparams::BzImage;
pub use pvh_bootparams::Compression;
use std::io::{self, Read};

/// The largest vmlinux the loader unpacks (1 GiB): a guard against
/// decompression bombs beyond what the image announces.
pub const MAX_UNPACKED: u64 = 1 << 30;

/// The most memory the xz/lzma decoder may use (a dictionary in a hostile
/// header could otherwise ask for 1.5 GiB); Linux builds use 32 MiB.
pub const DECODER_MEMLIMIT: u64 = 256 << 20;

/// The largest zstd window the decoder accepts: 2^28 bytes, the
/// [`DECODER_MEMLIMIT`].
const ZSTD_WINDOW_LOG_MAX: u32 = DECODER_MEMLIMIT.trailing_zeros();

/// A kernel image, recognised from its bytes.
#[derive(Debug, Clone)]
pub enum KernelImage<'a> {
    /// A PVH-bootable ELF (PHYS32_ENTRY note).
    PvhElf(ElfImage<'a>),
    /// A Linux bzImage.
    BzImage(BzImage<'a>),
}

impl<'a> KernelImage<'a> {
    /// Recognises and checks `bytes`: the ELF magic means ELF (checked as
    /// a PVH ELF); anything else must be a bzImage.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        if is_elf(bytes) {
            return Ok(Self::PvhElf(ElfImage::parse(bytes)?));
        }
        match BzImage::parse(bytes) {
            Ok(bz) => Ok(Self::BzImage(bz)),
            Err(e) if pvh_entry::linux::not_a_kernel(&e) => Err(LoadError::UnknownImage {
                magic: bytes.iter().take(4).copied().collect(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether it is a Linux kernel: a bzImage, or an ELF with Linux's own
    /// notes (a vmlinux). A `pvh wrap` image is the stub's ELF, so not
    /// one: what its stub boots is decided inside the guest.
    pub fn is_linux(&self) -> bool {
        match self {
            Self::BzImage(_) => true,
            Self::PvhElf(elf) => elf.linux,
        }
    }

    /// "PVH ELF" or "bzImage".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PvhElf(_) => "PVH ELF",
            Self::BzImage(_) => "bzImage",
        }
    }
}

/// Decompresses `bz`'s payload (gzip, xz, legacy lzma, zstd; or none) to the ELF
/// it holds. Linux appends the uncompressed size (le32) to every payload:
/// the output must have exactly that size, at most [`MAX_UNPACKED`].
pub fn unpack(bz: &BzImage<'_>) -> Result<Vec<u8>, LoadError> {
    decompress(bz.compression(), bz.payload())
}

/// [`unpack`] for a guest of `ram` bytes: the vmlinux must also fit in
/// the guest's RAM, so decompression stops at the smaller of `ram` and the
/// size the image announces (itself at most [`MAX_UNPACKED`]). An
/// announcement above `ram` is refused before anything is decompressed
/// ([`LoadError::AnnouncedOverRam`]); a stream that decodes to more than it
/// announced is stopped one byte past the announcement. The planner
/// unpacks through this, with the guest's RAM size.
pub fn unpack_within(bz: &BzImage<'_>, ram: u64) -> Result<Vec<u8>, LoadError> {
    decompress_within(bz.compression(), bz.payload(), ram)
}

/// Decompresses `payload`, a bzImage payload in `compression`: the
/// compressed stream followed by the uncompressed size (le32), as Linux
/// builds it. What [`unpack`] does with a bzImage's payload; public for
/// callers that hold a payload without its image (and for the decoder
/// benchmark, `examples/decompress.rs`).
///
/// The decoders: gzip with `flate2` (its Rust backend, miniz_oxide), xz
/// and lzma with `xz2` (bindings to C liblzma), zstd with `zstd` (bindings
/// to C libzstd). docs/benchmarks.md compares each with the C tool on the
/// same payload, and says why these.
pub fn decompress(compression: Compression, payload: &[u8]) -> Result<Vec<u8>, LoadError> {
    decompress_within(compression, payload, u64::MAX)
}

/// [`decompress`] into at most `ram` bytes (see [`unpack_within`]).
pub fn decompress_within(
    compression: Compression,
    payload: &[u8],
    ram: u64,
) -> Result<Vec<u8>, LoadError> {
    let format = compression.name();
    let err = |reason: String| LoadError::Decompress { format, reason };
    let over_ram = |announced| LoadError::AnnouncedOverRam { announced, ram };
    if compression == Compression::None {
        // CONFIG_KERNEL_UNCOMPRESSED: the payload is the ELF itself.
        if payload.len() as u64 > ram {
            return Err(over_ram(payload.len() as u64));
        }
        return Ok(payload.to_vec());
    }
    if !matches!(
        compression,
        Compression::Gzip | Compression::Xz | Compression::Lzma | Compression::Zstd
    ) {
        return Err(LoadError::UnsupportedCompression(format));
    }
    let (body, size) = match payload.len().checked_sub(4) {
        Some(n) => (&payload[..n], &payload[n..]),
        None => {
            return Err(err(format!(
                "payload of {} bytes is too short",
                payload.len()
            )));
        }
    };
    let size = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
    if size > MAX_UNPACKED {
        return Err(LoadError::AnnouncedTooLarge {
            announced: size,
            limit: MAX_UNPACKED,
        });
    }
    if size > ram {
        return Err(over_ram(size));
    }
    // The whole announced size (at most the guest's RAM, at most
    // MAX_UNPACKED) at once: pages not yet written cost nothing, and the
    // output is never copied to grow (a doubling `Vec` would peak at twice
    // the output). One byte more than announced, to notice a longer output.
    let mut out = output_buffer(usize::try_from(size + 1).unwrap_or(usize::MAX));
    // Whether the decoder saw the stream's end (its check, its end mark).
    let ended = with_prefault(&mut out, |out| match compression {
        // The gzip trailer holds the size too; the decoder stops at the end
        // of the member, so it may read the whole payload. It reports a
        // truncated member itself.
        Compression::Gzip => {
            flate2::read::GzDecoder::new(payload)
                .take(size + 1)
                .read_to_end(out)
                .map_err(|e: io::Error| err(e.to_string()))?;
            Ok(true)
        }
        Compression::Xz | Compression::Lzma => {
            let stream = if compression == Compression::Xz {
                xz2::stream::Stream::new_stream_decoder(DECODER_MEMLIMIT, 0)
            } else {
                xz2::stream::Stream::new_lzma_decoder(DECODER_MEMLIMIT)
            }
            .map_err(|e| err(e.to_string()))?;
            lzma_into(stream, body, out).map_err(|e| err(e.to_string()))
        }
        Compression::Zstd => zstd_into(body, out).map_err(|e| err(e.to_string())),
        other => Err(LoadError::UnsupportedCompression(other.name())),
    })?;
    if !ended && out.len() as u64 <= size {
        return Err(err(format!(
            "the stream is cut short ({} of {size} bytes decompressed)",
            out.len()
        )));
    }
    check_unpacked_size(out, size, err)
}

/// Runs `decode` on `out` while another thread faults in `out`'s spare
/// capacity ahead of it (`MADV_POPULATE_WRITE`, 2 MiB at a time from the
/// start, as the decoders write), and stops that thread when `decode`
/// returns.
///
/// The decoders are single-threaded; the first touch of each page of a
/// fresh 66 MB output (the kernel allocating and zeroing it) cost pvh's
/// xz decode of Debian's kernel 20-180 ms of system time per run on the
/// development machine, against 0-40 ms for `xz -d`, which streams into
/// one small buffer (docs/benchmarks.md, "Decompression"). On a second
/// CPU that work happens beside the decoder. With one CPU it is the same
/// work as the decoder's own page faults, in fewer kernel entries. It
/// faults in at most the buffer, the announced size (already checked
/// against the guest's RAM), as a complete output would; a stream that
/// ends early stops it within a chunk (tests/prefault_memory.rs). Where `MADV_POPULATE_WRITE` is missing (Linux
/// before 5.14) the thread stops at its first call and the decoder
/// faults its pages in itself, as before.
fn with_prefault<T>(out: &mut Vec<u8>, decode: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    #[cfg(target_os = "linux")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        const CHUNK: usize = 2 << 20;
        const PAGE: usize = 4096;
        // Whole pages of the spare capacity only: madvise takes a
        // page-aligned start, and the partial pages at either end are
        // left to the decoder.
        let base = out.as_mut_ptr() as usize + out.len();
        let start = base.next_multiple_of(PAGE);
        let end = (out.as_mut_ptr() as usize + out.capacity()) / PAGE * PAGE;
        if end > start + CHUNK {
            let done = AtomicBool::new(false);
            return std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut at = start;
                    while at < end && !done.load(Ordering::Relaxed) {
                        let len = CHUNK.min(end - at);
                        // SAFETY: [at, at + len) lies inside the
                        // allocation `out` owns, which outlives this
                        // scoped thread: the decoders write into its spare
                        // capacity and never reallocate it (the capacity
                        // is the announced size plus one, and each stops
                        // there). MADV_POPULATE_WRITE only faults pages in
                        // as a write would, without accessing them: it
                        // never changes a byte, so the decoder writing
                        // the same pages at the same time sees only its
                        // own bytes.
                        let r = unsafe {
                            libc::madvise(at as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE)
                        };
                        if r != 0 {
                            break;
                        }
                        at += len;
                    }
                });
                let result = decode(out);
                done.store(true, Ordering::Relaxed);
                result
            });
        }
    }
    decode(out)
}

/// Runs the liblzma decoder `stream` over all of `input` into `out`'s
/// spare capacity, until the stream ends (`true`), `out` is full, or the
/// decoder makes no more progress (a truncated stream).
///
/// Straight into the output buffer, not through a `Read`: `read_to_end`
/// zeroes each stretch of the buffer before the decoder overwrites it,
/// and the reader copies the input through a buffer of its own
/// (docs/benchmarks.md, "Decompression", has what that cost).
fn lzma_into(
    mut stream: xz2::stream::Stream,
    mut input: &[u8],
    out: &mut Vec<u8>,
) -> Result<bool, xz2::stream::Error> {
    while out.len() < out.capacity() {
        let (in_before, out_before) = (stream.total_in(), out.len());
        let status = stream.process_vec(input, out, xz2::stream::Action::Run)?;
        let used = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
        input = input.get(used..).unwrap_or_default();
        if status == xz2::stream::Status::StreamEnd {
            return Ok(true);
        }
        if used == 0 && out.len() == out_before {
            break;
        }
    }
    Ok(false)
}

/// [`lzma_into`] for zstd: decodes all of `input` (one frame or several)
/// into `out`'s spare capacity; `true` if the last frame ended.
///
/// A window (back-reference distance) beyond the memory limit is refused,
/// as for xz; Linux's `zstd -22` uses 2^27.
fn zstd_into(input: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut decoder = Decoder::new()?;
    decoder.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
        ZSTD_WINDOW_LOG_MAX,
    ))?;
    let mut input = InBuffer::around(input);
    let start = out.len();
    let mut output = OutBuffer::around_pos(out, start);
    loop {
        let (in_before, out_before) = (input.pos(), output.pos());
        // 0: a frame is complete and all of it is in `output`.
        let left = decoder.run(&mut input, &mut output)?;
        if left == 0 && input.pos() == input.src.len() {
            return Ok(true);
        }
        let stuck = input.pos() == in_before && output.pos() == out_before;
        if stuck || output.pos() == output.capacity() {
            return Ok(false);
        }
    }
}

/// `out`, if it holds exactly the `size` bytes the image announced.
fn check_unpacked_size(
    out: Vec<u8>,
    size: u64,
    err: impl Fn(String) -> LoadError,
) -> Result<Vec<u8>, LoadError> {
    if out.len() as u64 > size {
        return Err(LoadError::DecompressedTooLarge { limit: size });
    }
    if (out.len() as u64) < size {
        return Err(err(format!(
            "{} bytes decompressed, the image announces {size}",
            out.len()
        )));
    }
    Ok(out)
}

/// An empty `Vec` with room for `capacity` bytes, whose pages the kernel
/// is asked to back with transparent huge pages (`MADV_HUGEPAGE`; the
/// default THP mode, `madvise`, uses them only when asked).
///
/// Decompressing a 66 MB kernel into fresh 4 KiB pages takes about 16,000
/// first-touch page faults, which made pvh's zstd 0.73x as fast as
/// `zstd -d` (which streams into one small buffer) though both run
/// libzstd; on 2 MiB pages it is as fast (docs/benchmarks.md,
/// "Decompression"). Where huge pages are off or unavailable the advice
/// does nothing, and the buffer is an ordinary one.
fn output_buffer(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let base = out.as_mut_ptr() as usize;
        let start = base.next_multiple_of(HUGE);
        let end = (base + out.capacity()) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation `out` owns
            // (its spare capacity, not yet written); MADV_HUGEPAGE only
            // changes how the kernel backs those pages, never their
            // contents or whether they are mapped. A failure (huge pages
            // not built in) changes nothing, so its result is ignored.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    out
}
