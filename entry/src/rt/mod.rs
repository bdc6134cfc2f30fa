//! A runtime for Rust PVH guests (feature `rt`).
//!
//! A guest built for `x86_64-unknown-none` with this module gets:
//! - the `XEN_ELFNOTE_PHYS32_ENTRY` note and a 32-bit entry point that
//!   trusts nothing but EBX (`entry`): own GDT, segments, stack, zeroed
//!   `.bss`, an identity map of the first 4 GiB with 2 MiB pages, long mode,
//!   then `BootInfo` (built for `target_os = "none"` only) handed to the guest's main (see [`pvh_main!`](crate::pvh_main));
//! - [`paging`]: the identity map and its extension above 4 GiB;
//! - [`console`]: polled 16550 UART output (FIFO), or port 0xE9 under Xen, with
//!   [`rt_print!`](crate::rt_print) / [`rt_println!`](crate::rt_println);
//! - [`xen`]: Xen detection, hypercalls (`vmcall` or `vmmcall` by vendor),
//!   `XENMEM_memory_map`, `SCHEDOP_shutdown`;
//! - [`exit`]: leaving through QEMU's isa-debug-exit, then Xen, then `hlt`;
//! - [`rsdp`] and [`acpi`]: re-exports of [`crate::acpi`] (finding and
//!   checking the RSDP, the tables it leads to), which is not tied to the
//!   runtime;
//! - a panic handler that prints one line and exits with
//!   [`exit::ExitCode::Panic`].
//!
//! Everything that can be checked without hardware (page-table entries,
//! the RSDP checksum, console escaping, CPUID signatures) is plain code
//! with host unit tests; the rest builds only for `target_os = "none"`.
//!
//! Contract with the guest's linker script (see `guests/pvh.ld`): the image
//! is linked at a fixed address below 4 GiB with `relocation-model=static`,
//! keeps the `.note.pvh` section in a `PT_NOTE` segment, puts
//! `.text.pvh32` in a loadable segment and defines `__pvh_bss_start` and
//! `__pvh_bss_end` around every `.bss` input section.
//!
//! The runtime is single-threaded: only the boot CPU runs.

pub mod console;
pub mod exit;
pub mod idt;
pub mod paging;
pub mod xen;

pub use crate::acpi;
pub use crate::acpi::rsdp;

#[cfg(target_os = "none")]
mod entry;
#[cfg(all(target_os = "none", not(test)))]
mod panic;

#[cfg(target_os = "none")]
pub use entry::{BootInfo, entry_state, image};

/// A static the boot CPU owns: interior mutability without `static mut`,
/// sound because the runtime is single-threaded.
#[cfg(target_os = "none")]
#[repr(transparent)]
pub struct BootCell<T>(core::cell::UnsafeCell<T>);

// SAFETY: only the boot CPU runs (see the module docs), so there is never
// concurrent access; the hardware (page walker, IDT lookups) only reads.
#[cfg(target_os = "none")]
unsafe impl<T> Sync for BootCell<T> {}

#[cfg(target_os = "none")]
impl<T> BootCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// A raw pointer to the contents.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Physical memory through the runtime's identity map: from address 1 to
/// the top of the map (4 GiB at entry, more after
/// [`paging::extend_identity_map`]). Only address 0 itself is left out
/// (Rust's null pointer): the rest of page 0 is ordinary memory to a PVH
/// guest, and QEMU's PVH option ROM puts the memory map there (0x5a8).
///
/// # Safety
/// The caller must not write through the result to memory that Rust code
/// also uses (the image, its stack): the type cannot know where that is.
/// Reading is always sound: every byte below the top is mapped.
#[cfg(target_os = "none")]
pub unsafe fn identity_memory() -> crate::IdentityMapped {
    // SAFETY: `paging::mapped_top()` only grows and everything below it is
    // identity-mapped with writable pages; the aliasing rule is the
    // caller's, as documented.
    unsafe { crate::IdentityMapped::new(1, paging::mapped_top()) }
}

/// Declares the guest's main function: `pvh_main!(main)` with
/// `fn main(boot: pvh_entry::rt::BootInfo) -> !`. The runtime calls it on
/// the boot stack once long mode, the console and exception handlers are
/// up.
#[macro_export]
macro_rules! pvh_main {
    ($main:path) => {
        /// The runtime's handle on the guest's main function.
        #[unsafe(export_name = "__pvh_rt_main")]
        pub fn __pvh_rt_main(boot: $crate::rt::BootInfo) -> ! {
            let main: fn($crate::rt::BootInfo) -> ! = $main;
            main(boot)
        }
    };
}
