//! A long non-regular input costs the process a constant amount of its
//! own (anonymous) memory, as a regular file does: issue 14's "peak RSS
//! minus guest pages stays a small constant for any input".
//!
//! Its own test binary, with one test, so no other test's allocations run
//! while anonymous memory is measured.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use pvh_loader::input::{Input, InputKind};

mod common;
use common::proc_status_kib;

/// This process's resident anonymous memory, in KiB.
fn rss_anon_kib() -> u64 {
    proc_status_kib("RssAnon")
}

#[test]
fn a_48_mib_pipe_does_not_grow_anonymous_memory() {
    const LEN: usize = 48 << 20;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || {
        // One 64 KiB block written over and over: the feeder itself costs
        // no more than that.
        let block: Vec<u8> = (0..65536).map(|i| (i % 251) as u8).collect();
        for _ in 0..LEN / block.len() {
            writer.write_all(&block).unwrap();
        }
    });
    let path = PathBuf::from(format!("/proc/self/fd/{}", reader.as_raw_fd()));
    let before = rss_anon_kib();
    let input = Input::open(&path, 64 << 20).unwrap();
    feeder.join().unwrap();
    assert_eq!(input.kind(), InputKind::Spooled);
    assert_eq!(input.len(), LEN);
    // Touch every byte (as the loader's copy into guest memory does): the
    // pages are the temporary file's, not anonymous memory.
    assert!(
        input
            .chunks(65536)
            .all(|c| c.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8))
    );
    let grown = rss_anon_kib().saturating_sub(before);
    // Read onto the heap, as before, the input alone was 48 MiB of
    // anonymous memory; spooled, the growth is the 1 MiB read buffer (freed)
    // and the feeder thread's stack and block.
    assert!(
        grown < 8 << 10,
        "anonymous memory grew by {grown} KiB for a 48 MiB pipe"
    );
}
