//! The start_info reader over arbitrary guest memory: `Ok` or a typed
//! error, never a panic. The first bytes pick where the start_info is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvh_entry::{SliceMemory, StartInfoView};

fuzz_target!(|data: &[u8]| {
    let Some((&at, memory)) = data.split_first() else { return };
    let mem = SliceMemory::new(0x1000, memory);
    if let Ok(view) = StartInfoView::read(&mem, 0x1000 + u64::from(at)) {
        let owned = view.to_owned();
        assert_eq!(owned.modules.len() as u32, view.module_count());
    }
});
