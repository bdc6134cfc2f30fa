//! The decoders' output buffer is faulted in ahead of the decoder by a
//! second thread (`image::with_prefault`); that thread stops when the
//! decoder does, so a stream that ends early does not cost the memory its
//! image announced.
//!
//! Its own test binary, with one test, so no other test's allocations
//! raise the process's peak while it is measured.

mod common;

use common::*;
use pvh_loader::LoadError;
use pvh_loader::image::{Compression, decompress_within};

/// This process's peak resident memory, in KiB.
fn peak_kib() -> u64 {
    proc_status_kib("VmHWM")
}

#[test]
fn a_stream_cut_short_does_not_fault_in_its_announced_size() {
    // 1 GiB announced (the loader's limit), 64 KiB of real stream: the
    // decoder stops within microseconds with "cut short". Had the
    // prefault thread gone on to the end of the buffer, the peak would
    // have grown by the whole GiB.
    let data = vec![7u8; 64 << 10];
    let mut stream = xz(&data);
    stream.truncate(stream.len() / 2);
    let payload = with_size(stream, (1 << 30) - 1);
    let before = peak_kib();
    match decompress_within(Compression::Xz, &payload, u64::MAX) {
        Err(LoadError::Decompress { format: "xz", .. }) => {}
        other => panic!("expected a cut-short stream, got {other:?}"),
    }
    let grown_mib = (peak_kib() - before) >> 10;
    assert!(
        grown_mib < 512,
        "peak resident memory grew by {grown_mib} MiB for a 1 GiB announcement"
    );
}
