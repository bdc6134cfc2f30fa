//! bzImage header parsing of arbitrary bytes: the parsed payload lies
//! inside the protected-mode code, and the 64-bit boot check answers.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_bootparams::BzImage;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(image) = BzImage::parse(data) {
        assert!(image.payload().len() <= image.kernel().len());
        assert!(image.setup_size() + image.kernel().len() <= data.len());
        let _ = image.check_64bit_boot();
        let _ = image.compression().name();
    }
}
