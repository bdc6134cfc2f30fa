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
pub mod error;
pub mod gdt;
pub mod layout;
pub mod plan;
mod planner;

pub use cpu::{CpuState, DescriptorTable, EntryMode, Segment};
pub use error::LoadError;
pub use layout::{GuestRam, HYPERVISOR_RESERVED, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
pub use plan::{BootConfig, BootPlan, BootProtocol, Module, Placement, Purpose, Relocation};
pub use planner::plan;
pub use pvh_entry::{MemmapEntry, SubarchPolicy};

/// A guest ready to run: its boot vCPU state and what was written where.
#[derive(Debug, Clone)]
pub struct LoadedGuest {
    /// The boot vCPU's initial state.
    pub cpu: CpuState,
    /// Where the start_info is.
    pub start_info: u64,
    /// The plan that was carried out.
    pub plan: BootPlan,
}

/// Writes everything `plan` describes into `mem` and returns the boot
/// vCPU's state. `config` must be the one the plan was made from.
pub fn load<M: vm_memory::GuestMemory>(
    mem: &M,
    plan: &BootPlan,
    config: &BootConfig<'_>,
) -> Result<LoadedGuest, LoadError> {
    let _ = (mem, config);
    Err(LoadError::PlanMismatch {
        what: "unimplemented",
        planned: plan.entry,
        given: 0,
    })
}
