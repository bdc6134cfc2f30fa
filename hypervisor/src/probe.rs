//! The guests built into `pvh`: the probe (booted when no kernel is given)
//! and the stub that boots a bzImage through PVH, from the `pvh-guests`
//! crate (which builds them for `x86_64-unknown-none`).

/// The probe guest: a PVH ELF that prints one `key=value` line per fact
/// its loader passed it, then exits through the exit port.
pub const PROBE: Option<&[u8]> = Some(pvh_guests::PROBE);

/// The PVH stub guest that boots a bzImage: `pvh boot --kernel bzImage`
/// loads it as the kernel and the bzImage as module 0.
pub const STUB: Option<&[u8]> = Some(pvh_guests::STUB);
