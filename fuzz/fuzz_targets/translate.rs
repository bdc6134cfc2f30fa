//! The start_info -> zero page translation over arbitrary memory, with the
//! memory map taken from the bytes too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvh_entry::{SliceMemory, StartInfoView, TranslateOptions, translate_owned};

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory::new(0, data);
    if let Ok(view) = StartInfoView::read(&mem, 0) {
        if let Ok(zp) = translate_owned(&view, &TranslateOptions::default()) {
            assert!(zp.params.e820().len() <= 128);
            assert_eq!(zp.params.sentinel, 0);
        }
    }
});
