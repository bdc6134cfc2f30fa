//! The `start_info` fuzz target; its body (`bodies/start_info.rs`) is shared with the
//! stable corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../bodies/start_info.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
