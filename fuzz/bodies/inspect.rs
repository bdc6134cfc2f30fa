//! `pvh inspect` over arbitrary bytes (ELF notes, bzImage headers, the
//! wrap payload inside an ELF): a report, never a panic, that agrees with
//! itself, printed as text and as JSON.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_loader::inspect::{Format, inspect};

/// One input.
pub fn run(data: &[u8]) {
    let r = inspect(data);
    assert_eq!(r.size, data.len() as u64);
    match r.format {
        Format::PvhElf => assert!(r.elf.as_ref().is_some_and(|e| e.pvh_entry.is_some())),
        Format::Elf => assert!(r.elf.as_ref().is_some_and(|e| e.pvh_entry.is_none())),
        Format::Bzimage => assert!(r.bzimage.is_some()),
        Format::Other => assert!(r.elf.is_none() && r.bzimage.is_none()),
    }
    let _ = r.to_text();
    let json = r.to_json();
    assert!(json.starts_with('{'), "{json}");
}
