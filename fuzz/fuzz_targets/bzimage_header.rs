//! The `bzimage_header` fuzz target; its body (`bodies/bzimage_header.rs`) is shared with the
//! stable corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../bodies/bzimage_header.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
