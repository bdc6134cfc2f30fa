//! Arbitrary bytes as a PVH ELF: parse, plan and load (both relocation
//! policies) into 4 MiB of guest RAM followed by a 4 KiB guard page that must
//! stay untouched. Typed errors are fine; a panic or a write past the RAM
//! the planner was given is a finding.
//!
//! The guest memory is mapped once per process and reused, so an input
//! costs the parse and the copy, not an mmap of the whole RAM (the first
//! version mapped 5 MiB per input and ran at about 75 inputs/s).
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_loader::{BootConfig, GuestRam, Relocation, load, plan};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 4 << 20;
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
        Fixture { ram: GuestRam::new(RAM).expect("4 MiB is a valid RAM size"), mem }
    };
}

/// One input.
pub fn run(data: &[u8]) {
    let _ = pvh_loader::ElfImage::parse(data);
    FIXTURE.with(|f| {
        for relocation in [Relocation::Preferred, Relocation::Anywhere] {
            let config = BootConfig {
                kernel: data,
                relocation,
                cmdline: b"console=ttyS0",
                ..Default::default()
            };
            if let Ok(p) = plan(&f.ram, &config) {
                let _ = load(&f.mem, &p, &config);
            }
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
