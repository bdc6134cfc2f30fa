//! Arbitrary bytes as a bzImage, header and payload: the first byte picks
//! the path (the Linux 64-bit protocol, pvh-unpack, or the bare unpack of
//! the payload to its vmlinux); the rest is the image. Planned and loaded
//! into 8 MiB of guest RAM, mapped once per process and reused, followed by
//! a 4 KiB guard page that must stay untouched (a write further out fails
//! in vm-memory, outside the mapping).
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_loader::{BootConfig, BootProtocol, GuestRam, KernelImage, Module, load, plan, unpack};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 8 << 20;
const GUARD: usize = 4 << 10;
const GUARD_BYTE: u8 = 0x6b;

struct Fixture {
    ram: GuestRam,
    mem: GuestMemoryMmap,
}

thread_local! {
    static FIXTURE: Fixture = {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize + GUARD)])
            .expect("map guest RAM");
        mem.write_slice(&[GUARD_BYTE; GUARD], GuestAddress(RAM))
            .expect("fill the guard");
        Fixture { ram: GuestRam::new(RAM).expect("8 MiB is a valid RAM size"), mem }
    };
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
    let config = BootConfig {
        kernel: image,
        protocol,
        cmdline: b"quiet",
        modules: vec![Module {
            bytes: &initrd,
            cmdline: None,
            above_4g: false,
        }],
        ..Default::default()
    };
    FIXTURE.with(|f| {
        if let Ok(p) = plan(&f.ram, &config) {
            let _ = load(&f.mem, &p, &config);
        }
        let mut guard = [0u8; GUARD];
        f.mem
            .read_slice(&mut guard, GuestAddress(RAM))
            .expect("read the guard");
        assert!(
            guard.iter().all(|&b| b == GUARD_BYTE),
            "write outside guest RAM"
        );
    });
}
