//! The start_info reader over arbitrary guest memory: `Ok` or a typed
//! error, never a panic, and what it accepts is coherent. The first byte
//! picks where in the memory the start_info is.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_entry::{SliceMemory, StartInfoView};

/// One input.
pub fn run(data: &[u8]) {
    let Some((&at, memory)) = data.split_first() else {
        return;
    };
    let mem = SliceMemory::new(0x1000, memory);
    if let Ok(view) = StartInfoView::read(&mem, 0x1000 + u64::from(at)) {
        let owned = view.to_owned();
        assert_eq!(owned.modules.len() as u32, view.module_count());
    }
}
