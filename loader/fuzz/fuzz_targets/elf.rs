//! The `elf` fuzz target; its body (`bodies/elf.rs`) is shared with the
//! stable corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../bodies/elf.rs"]
mod body;
#[path = "../bodies/guest_ram.rs"]
mod guest_ram;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
