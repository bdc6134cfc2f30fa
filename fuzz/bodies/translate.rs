//! The start_info -> zero page translation over arbitrary memory, with the
//! memory map taken from the bytes too: never a panic, and a translated
//! zero page keeps the e820 table within its 128 entries.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_entry::{SliceMemory, StartInfoView, TranslateOptions, translate_owned};

/// One input.
pub fn run(data: &[u8]) {
    let mem = SliceMemory::new(0, data);
    if let Ok(view) = StartInfoView::read(&mem, 0) {
        if let Ok(zp) = translate_owned(&view, &TranslateOptions::default()) {
            assert!(zp.params.e820().len() <= 128);
            assert_eq!(zp.params.sentinel, 0);
        }
    }
}
