//! Arbitrary bytes as a PVH ELF: parse, plan and load (both relocation
//! policies) into 4 MiB of reused guest RAM (`guest_ram.rs`) whose guard
//! page must stay untouched. Typed errors are fine; a panic or a write past
//! the RAM the planner was given is a finding.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use crate::guest_ram::Fixture;
use pvh_loader::Kernel;
use pvh_loader::{BootConfig, Relocation, load, plan};

const RAM: u64 = 4 << 20;

thread_local! {
    static FIXTURE: Fixture = Fixture::new(RAM);
}

/// One input.
pub fn run(data: &[u8]) {
    let _ = pvh_loader::ElfImage::parse(data);
    FIXTURE.with(|f| {
        for relocation in [Relocation::Preferred, Relocation::Anywhere] {
            let config = BootConfig::new(Kernel::PvhElf {
                image: data,
                relocation,
            })
            .cmdline(b"console=ttyS0");
            if let Ok(p) = plan(&f.ram, &config) {
                let _ = load(&f.mem, &p);
            }
        }
        f.assert_guard_untouched();
    });
}
