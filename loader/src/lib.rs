//! PVH toolstack library: puts a kernel (PVH ELF or bzImage), modules,
//! command lines, a memory map and the start_info into guest memory through
//! rust-vmm `vm-memory`, and returns the boot vCPU's initial state.
//!
//! Two steps: [`plan()`] decides and checks every placement without writing
//! anything and returns a read-only plan that borrows its inputs; [`load`]
//! (given the plan alone) writes exactly what the plan says (start_info only
//! through `pvh_entry::write_start_info`, the zero page only through
//! `pvh_entry::zeropage::translate`) and returns a [`LoadedGuest`].
//!
//! ```no_run
//! use pvh_loader::{BootConfig, GuestRam, Kernel, Module, load, plan};
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kernel = std::fs::read("vmlinux")?;
//! let initrd = std::fs::read("initrd.img")?;
//! // The VMM's layout: its RAM and the ranges it keeps (KVM's TSS here).
//! let ram = GuestRam::builder(512 << 20)
//!     .reserve("KVM identity map + TSS", 0xfffb_c000..0xfffc_0000)
//!     .build()?;
//! let ranges: Vec<_> = ram.regions().iter().map(|&(a, l)| (GuestAddress(a), l as usize)).collect();
//! let mem = GuestMemoryMmap::<()>::from_ranges(&ranges)?;
//! let config = BootConfig::new(Kernel::pvh_elf(&kernel))
//!     .cmdline(b"console=ttyS0")
//!     .module(Module::new(&initrd));
//! let plan = plan(&ram, &config)?;
//! println!("{plan}");
//! let guest = load(&mem, &plan)?;
//! assert_eq!(guest.cpu.rbx, guest.start_info);
//! # Ok(())
//! # }
//! ```
//! See `docs/loader.md` for every error and what pvh checks that other
//! loaders do not.

pub mod cpu;
pub mod elf;
pub mod error;
pub mod gdt;
pub mod image;
pub mod input;
pub mod inspect;
pub mod layout;
#[cfg(feature = "linux-loader")]
pub mod linux_loader;
mod load;
pub mod plan;
mod planner;
pub mod unpack_cache;
pub mod wrap;

pub use cpu::{CpuState, DescriptorTable, EntryMode, Segment};
pub use elf::{ElfClass, ElfImage, LoadSegment};
pub use error::LoadError;
pub use image::{KernelImage, MAX_UNPACKED, unpack, unpack_within};
pub use input::{Input, InputError};
pub use layout::{ACPI_REGION, GuestRam, GuestRamBuilder, Reservation};
pub use load::{LoadedGuest, load, load_into_zeroed};
pub use plan::{
    BootConfig, BootPlan, BootProtocol, Kernel, Module, Placement, Purpose, Relocation,
};
pub use planner::{check_disjoint, plan};
pub use pvh_entry::{MemmapEntry, SubarchPolicy};
pub use unpack_cache::{CacheOutcome, UnpackCache, Unpacked};

/// The example in `docs/loader.md`, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../docs/loader.md")]
pub struct LoaderMdDoctests;
