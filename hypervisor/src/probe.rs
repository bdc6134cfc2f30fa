//! The guests built into `pvh`: the probe (booted when no kernel is given)
//! and the stub that boots a bzImage through PVH. They come from the
//! `pvh-guests` crate once it exists; until then both are absent and the
//! CLI says so.

/// The probe guest (a PVH ELF that reports what it was booted with), if
/// built in.
pub const PROBE: Option<&[u8]> = None;

/// The PVH stub guest that boots a bzImage, if built in.
pub const STUB: Option<&[u8]> = None;
