//! Arbitrary bytes as a PVH ELF: parse, plan and load into 4 MiB of RAM
//! backed by 5 MiB; the extra megabyte must stay untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvh_loader::{BootConfig, GuestRam, Relocation, load, plan};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 4 << 20;
const GUARD: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = pvh_loader::ElfImage::parse(data);
    let ram = GuestRam::new(RAM).unwrap();
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize + GUARD)]).unwrap();
    mem.write_slice(&vec![0x6b; GUARD], GuestAddress(RAM))
        .unwrap();
    for relocation in [Relocation::Preferred, Relocation::Anywhere] {
        let config = BootConfig {
            kernel: data,
            relocation,
            cmdline: b"console=ttyS0",
            ..Default::default()
        };
        if let Ok(p) = plan(&ram, &config) {
            let _ = load(&mem, &p, &config);
        }
    }
    let mut guard = vec![0; GUARD];
    mem.read_slice(&mut guard, GuestAddress(RAM)).unwrap();
    assert!(guard.iter().all(|&b| b == 0x6b), "write outside guest RAM");
});
