//! Guest RAM for the loader targets: mapped once per thread and reused
//! across inputs (mapping it per input made `elf` run at 75 inputs/s),
//! followed by a 4 KiB guard page that no load may touch. A write further
//! out fails inside vm-memory, outside the mapping.

use pvh_loader::GuestRam;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const GUARD: usize = 4 << 10;
const GUARD_BYTE: u8 = 0x6b;

/// The planner's view of the RAM and its backing.
pub struct Fixture {
    /// What the planner is told.
    pub ram: GuestRam,
    /// The RAM and the guard page after it.
    pub mem: GuestMemoryMmap,
    size: u64,
}

impl Fixture {
    /// `size` bytes of RAM from address 0, then the guard.
    pub fn new(size: u64) -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size as usize + GUARD)])
            .expect("map guest RAM");
        mem.write_slice(&[GUARD_BYTE; GUARD], GuestAddress(size))
            .expect("fill the guard");
        Self {
            ram: GuestRam::new(size).expect("a valid RAM size"),
            mem,
            size,
        }
    }

    /// Panics if anything wrote past the end of RAM.
    pub fn assert_guard_untouched(&self) {
        let mut guard = [0u8; GUARD];
        self.mem
            .read_slice(&mut guard, GuestAddress(self.size))
            .expect("read the guard");
        assert!(
            guard.iter().all(|&b| b == GUARD_BYTE),
            "write outside guest RAM"
        );
    }
}
