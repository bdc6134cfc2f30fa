//! The `bootfdt` fuzz target; its body (`bodies/bootfdt.rs`) is shared with the
//! stable corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../bodies/bootfdt.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
