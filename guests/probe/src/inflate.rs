//! In-place decompression of a gzip module, as a domain that unpacks its
//! own module does: the module's bytes are moved to the end of the room
//! the domain needs, then decompressed from there to the module's start,
//! the output never overtaking the input still to be read.
//!
//! The room needed follows from the gzip stream alone (its trailer's
//! ISIZE) plus this decoder's own margin ([`MARGIN`]): nothing here knows
//! how much room the loader meant to leave. So the check is real: if the
//! loader did not keep that room free after the module, the move and the
//! output land on something else (another module, the end of RAM), which
//! [`in_place`] refuses up front when it can see it (RAM map, the other
//! start_info objects), and the caller's re-check of the other modules'
//! CRCs catches when it cannot.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
use pvh_entry::{PhysRead, PhysWrite};

/// Room this decoder needs beyond the larger of input and output: its
/// read-ahead (one [`CHUNK`]) with plenty to spare.
pub const MARGIN: u64 = 64 << 10;
/// Input bytes copied out of guest memory at a time.
const CHUNK: usize = 4096;
/// The deflate dictionary: the output ring (a power of two, at least the
/// 32 KiB window).
const RING: usize = 32 << 10;

/// The output ring. Static so that the probe's 64 KiB stack only holds the
/// decoder state.
static mut RING_BUF: [u8; RING] = [0; RING];

/// What an in-place decompression did.
#[derive(Debug, Clone, Copy)]
pub struct Inflated {
    /// The memory used: the module's start ..
    pub start: u64,
    /// .. to here (exclusive).
    pub end: u64,
    /// Bytes written (the decompressed data, from `start`).
    pub out_len: u64,
    /// CRC-32 of the output.
    pub crc32: u32,
    /// Whether CRC and length match the gzip trailer.
    pub trailer_ok: bool,
}

/// The gzip header's length (RFC 1952, 2.3), or `None` if `head` does not
/// start a gzip member with deflate data.
fn header_len(head: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if head.get(..3)? != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = *head.get(3)?;
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = u16::from_le_bytes([*head.get(at)?, *head.get(at + 1)?]);
        at += 2 + usize::from(xlen);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += head.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at < head.len()).then_some(at)
}

/// The room a gzip module of `size` bytes whose trailer says `isize`
/// needs, from its start: page-rounded.
pub fn room(size: u64, isize: u64) -> u64 {
    (size.max(isize) + MARGIN).next_multiple_of(4096)
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Decompresses the gzip module at `start..start + size` in place. `ram`
/// lists the RAM ranges (start, end), `keep` every range that must not be
/// touched (the other modules, the start_info objects, this image).
pub fn in_place<M: PhysWrite>(
    mem: &mut M,
    start: u64,
    size: u64,
    ram: &[(u64, u64)],
    keep: &[(u64, u64)],
) -> Result<Inflated, &'static str> {
    let mut head = [0u8; 512];
    let head_len = head.len().min(size as usize);
    mem.read(start, &mut head[..head_len])
        .map_err(|_| "module unreadable")?;
    let hdr = header_len(&head[..head_len]).ok_or("not a gzip stream")?;
    let mut trailer = [0u8; 8];
    if size < (hdr + 8) as u64 {
        return Err("gzip stream too short");
    }
    mem.read(start + size - 8, &mut trailer)
        .map_err(|_| "module unreadable")?;
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u64::from(u32::from_le_bytes([
        trailer[4], trailer[5], trailer[6], trailer[7],
    ]));

    // The room, checked against everything the probe knows of.
    let end = start + room(size, isize);
    if keep.iter().any(|&k| overlaps(k, (start, end))) {
        return Err("the room the module needs holds something else");
    }
    if !ram.iter().any(|&(s, e)| s <= start && end <= e) {
        return Err("the room the module needs is not all RAM");
    }

    // Move the compressed bytes to the end of the room, last chunk first
    // (the ranges overlap; the destination is higher).
    let delta = end - start - size;
    let mut buf = [0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64);
        left -= n;
        let b = &mut buf[..n as usize];
        mem.read(start + left, b).map_err(|_| "move failed")?;
        mem.write(start + left + delta, b)
            .map_err(|_| "move failed")?;
    }

    // Decompress from there to `start`.
    let mut src = start + delta + hdr as u64;
    let src_end = start + delta + size - 8;
    let mut dst = start;
    let mut crc = crc32fast::Hasher::new();
    let mut r = DecompressorOxide::new();
    // SAFETY: the probe is single-threaded and this is the only user of
    // the ring; no other reference to it exists while this one lives.
    let ring = unsafe { core::slice::from_raw_parts_mut((&raw mut RING_BUF).cast::<u8>(), RING) };
    let mut ring_pos = 0usize;
    let (mut have, mut used) = (0usize, 0usize);
    loop {
        if used == have && src < src_end {
            let n = (src_end - src).min(CHUNK as u64) as usize;
            mem.read(src, &mut buf[..n])
                .map_err(|_| "input unreadable")?;
            src += n as u64;
            (have, used) = (n, 0);
        }
        let more = if src < src_end {
            inflate_flags::TINFL_FLAG_HAS_MORE_INPUT
        } else {
            0
        };
        let (status, consumed, written) =
            decompress(&mut r, &buf[used..have], ring, ring_pos, more);
        used += consumed;
        let out = &ring[ring_pos..ring_pos + written];
        // In place: the output may only cover input already read.
        if dst + written as u64 > src {
            return Err("the output would overrun the input still to be read");
        }
        mem.write(dst, out).map_err(|_| "output unwritable")?;
        crc.update(out);
        dst += written as u64;
        ring_pos = (ring_pos + written) & (RING - 1);
        match status {
            TINFLStatus::Done => break,
            TINFLStatus::NeedsMoreInput if src >= src_end && used == have => {
                return Err("gzip stream ends early");
            }
            TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput => {}
            _ => return Err("corrupt deflate data"),
        }
    }
    let crc32 = crc.finalize();
    let out_len = dst - start;
    Ok(Inflated {
        start,
        end,
        out_len,
        crc32,
        trailer_ok: crc32 == want_crc && out_len & 0xffff_ffff == isize,
    })
}
