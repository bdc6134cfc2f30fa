//! Arbitrary bytes as a bzImage, header and payload: the first byte picks
//! the path (the Linux 64-bit protocol, pvh-unpack, or the bare unpack of
//! the payload to its vmlinux); the rest is the image. Planned and loaded
//! into 8 MiB of reused guest RAM (`guest_ram.rs`) whose guard page must
//! stay untouched.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use crate::guest_ram::Fixture;
use pvh_loader::Kernel;
use pvh_loader::{BootConfig, BootProtocol, KernelImage, Module, load, plan, unpack};

const RAM: u64 = 8 << 20;

thread_local! {
    static FIXTURE: Fixture = Fixture::new(RAM);
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let protocol = match selector % 3 {
        0 => BootProtocol::Linux64,
        1 => BootProtocol::PvhUnpack,
        _ => {
            // The unpacked vmlinux is exactly the announced size.
            if let Ok(KernelImage::BzImage(bz)) = KernelImage::parse(image) {
                if let Ok(elf) = unpack(&bz) {
                    let announced = bz.payload().len().checked_sub(4).map(|n| {
                        let t = &bz.payload()[n..];
                        u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize
                    });
                    if bz.compression() != pvh_bootparams::Compression::None {
                        assert_eq!(Some(elf.len()), announced);
                    }
                }
            }
            return;
        }
    };
    let initrd = [0x3cu8; 4096];
    let config = BootConfig::new(Kernel::from_protocol(protocol, image, None))
        .cmdline(b"quiet")
        .modules(vec![
            Module::new(&initrd)
                .cmdline(None)
                .above_4g(false)
                .headroom(0),
        ]);
    FIXTURE.with(|f| {
        if let Ok(p) = plan(&f.ram, &config) {
            let _ = load(&f.mem, &p);
        }
        f.assert_guard_untouched();
    });
}
