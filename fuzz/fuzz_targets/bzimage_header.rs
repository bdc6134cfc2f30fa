//! bzImage header parsing of arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvh_bootparams::BzImage;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = BzImage::parse(data) {
        assert!(image.payload().len() <= image.kernel().len());
        let _ = image.check_64bit_boot();
    }
});
