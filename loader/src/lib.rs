//! PVH toolstack library: puts a kernel (PVH ELF or bzImage), modules,
//! command lines, a memory map and the start_info into guest memory through
//! rust-vmm `vm-memory`, and returns the boot vCPU's initial state.
//!
//! ```text
//! let ram = GuestRam::new(512 << 20)?;            // layout the hypervisor backs
//! let plan = pvh_loader::plan(&ram, &config)?;     // decide, check, no writes
//! let guest = pvh_loader::load(&mem, &plan, &config)?; // write; cpu state out
//! ```
//! See `docs/loader.md` for the full example and every error.

pub mod cpu;
pub mod elf;
pub mod error;
pub mod gdt;
pub mod image;
pub mod layout;
mod load;
pub mod plan;
mod planner;

pub use cpu::{CpuState, DescriptorTable, EntryMode, Segment};
pub use elf::{ElfClass, ElfImage, LoadSegment};
pub use error::LoadError;
pub use image::{KernelImage, unpack};
pub use layout::{GuestRam, HYPERVISOR_RESERVED, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
pub use load::{LoadedGuest, load};
pub use plan::{BootConfig, BootPlan, BootProtocol, Module, Placement, Purpose, Relocation};
pub use planner::{check_disjoint, plan};
pub use pvh_entry::{MemmapEntry, SubarchPolicy};

/// A rust-vmm `linux_loader` command line, re-exported for callers that
/// build their command line with it.
pub use linux_loader::cmdline::Cmdline;

/// The bytes (without NUL) of a `linux_loader` command line, for
/// [`BootConfig::cmdline`].
pub fn cmdline_bytes(cmdline: &Cmdline) -> Result<Vec<u8>, LoadError> {
    let c = cmdline
        .as_cstring()
        .map_err(|e| LoadError::Cmdline(e.to_string()))?;
    Ok(c.into_bytes())
}
