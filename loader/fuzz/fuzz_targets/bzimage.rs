//! The `bzimage` fuzz target; its body (`bodies/bzimage.rs`) is shared with the
//! stable corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../bodies/bzimage.rs"]
mod body;
#[path = "../bodies/guest_ram.rs"]
mod guest_ram;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
