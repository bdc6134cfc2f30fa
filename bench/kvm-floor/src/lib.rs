//! The floor of the boot benchmark (`scripts/bench-boot.sh`,
//! `docs/benchmarks.md`): what any KVM VMM must pay to start a guest and
//! end it, with nothing of its own added.
//!
//! - [`floor::run`]: open `/dev/kvm`, create the VM, register guest RAM (an
//!   anonymous mapping, as `pvh` allocates it), create the in-kernel
//!   irqchip and PIT, one vCPU in flat 32-bit protected mode at
//!   [`guest::ENTRY`] (the PVH entry state), run it until the guest's first
//!   instruction exits to userspace, tear everything down.
//! - [`guest`]: that guest (two instructions: `xor eax, eax; out 0xf4, al`),
//!   and the same code as a PVH ELF, so `pvh` and QEMU run exactly the
//!   guest work the floor runs.
//! - [`stopwatch`]: time a command and its output markers (for a shell
//!   without a sub-second clock).

pub mod floor;
pub mod guest;
pub mod stopwatch;

pub use floor::{FloorConfig, FloorError, FloorReport, run};
