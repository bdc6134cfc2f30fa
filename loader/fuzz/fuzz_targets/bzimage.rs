//! Arbitrary bytes as a bzImage through the Linux 64-bit protocol and
//! pvh-unpack (the first byte chooses); nothing may land past the RAM the
//! planner was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvh_loader::{BootConfig, BootProtocol, GuestRam, Module, load, plan};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 8 << 20;
const GUARD: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    if let Ok(pvh_loader::KernelImage::BzImage(bz)) = pvh_loader::KernelImage::parse(image) {
        let _ = pvh_loader::unpack(&bz);
    }
    let ram = GuestRam::new(RAM).unwrap();
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize + GUARD)]).unwrap();
    mem.write_slice(&vec![0x6b; GUARD], GuestAddress(RAM))
        .unwrap();
    let protocol = match selector % 2 {
        0 => BootProtocol::Linux64,
        _ => BootProtocol::PvhUnpack,
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
    if let Ok(p) = plan(&ram, &config) {
        let _ = load(&mem, &p, &config);
    }
    let mut guard = vec![0; GUARD];
    mem.read_slice(&mut guard, GuestAddress(RAM)).unwrap();
    assert!(guard.iter().all(|&b| b == 0x6b), "write outside guest RAM");
});
