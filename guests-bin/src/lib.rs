//! The PVH guest programs of `guests/`, built by this crate's build script
//! for `x86_64-unknown-none` (no manual step: `cargo build` of the
//! workspace builds them), as bytes and as paths for host tests and tools.
//!
//! - [`PROBE`] / [`probe_path`]: `pvh-probe`, which prints one `key=value`
//!   line per fact its loader passed it (see `guests/probe/src/main.rs`)
//!   and exits through QEMU's isa-debug-exit with an [`ExitCode`].
//! - [`STUB`] / [`stub_path`]: `pvh-stub`, the zero-page stub that boots
//!   an unmodified bzImage (embedded by `pvh wrap`, or passed as a module).
//!
//! In the pvh repository the images are built from `guests/`; in the
//! published crate they are the bytes in `prebuilt/` (see `build.rs`),
//! which a test holds equal to a rebuild of the sources.
//!
//! - [`report`]: reading such output back; [`harness`]: running an
//!   emulator under a deadline, and the skip-or-fail rule for missing
//!   resources.

use std::path::Path;

pub mod harness;
pub mod report;

pub use pvh_entry::rt::exit::ExitCode;

/// The `pvh-probe` ELF image.
pub const PROBE: &[u8] = include_bytes!(env!("PVH_PROBE_PATH"));

/// Where the `pvh-probe` ELF image is on disk (in this crate's build
/// output directory), for tools that take a file name, such as QEMU's
/// `-kernel`.
pub fn probe_path() -> &'static Path {
    Path::new(env!("PVH_PROBE_PATH"))
}

/// The `pvh-stub` ELF image (the zero-page stub).
pub const STUB: &[u8] = include_bytes!(env!("PVH_STUB_PATH"));

/// Where the `pvh-stub` ELF image is on disk.
pub fn stub_path() -> &'static Path {
    Path::new(env!("PVH_STUB_PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The images shipped in `prebuilt/` (what the published crate
    /// embeds) are the sources rebuilt: `scripts/update-guests.sh --check`
    /// rebuilds them (the same build script, a copy of the checkout at a
    /// fixed path, the toolchain named in `prebuilt/TOOLCHAIN`) and
    /// compares byte for byte.
    #[cfg(pvh_guests_from_source)]
    #[test]
    fn prebuilt_guests_are_the_sources_rebuilt() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/update-guests.sh"))
            .arg("--check")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/update-guests.sh --check: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn probe_is_a_pvh_elf_and_the_file_matches_the_bytes() {
        assert_eq!(&PROBE[..4], b"\x7fELF");
        assert_eq!(std::fs::read(probe_path()).unwrap(), PROBE);
        // Class 64, little-endian, x86-64, ET_EXEC.
        assert_eq!(PROBE[4], 2);
        assert_eq!(PROBE[5], 1);
        assert_eq!(u16::from_le_bytes([PROBE[16], PROBE[17]]), 2);
        assert_eq!(u16::from_le_bytes([PROBE[18], PROBE[19]]), 62);
    }

    /// Guests must not touch SSE/AVX state: nothing sets up CR4.OSFXSR,
    /// and some hosts (the PVM-style KVM here) cannot emulate it.
    #[test]
    fn probe_has_no_vector_register_instructions() {
        let Some(objdump) = harness::which("objdump") else {
            return harness::skip_or_fail("objdump not found on PATH");
        };
        let out = std::process::Command::new(objdump)
            .arg("-d")
            .arg(probe_path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("<pvh_start32>:"), "not disassembled?");
        let vector: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("%xmm") || l.contains("%ymm") || l.contains("%zmm"))
            .collect();
        assert!(vector.is_empty(), "{vector:#?}");
    }

    #[test]
    fn probe_enters_at_1_mib_and_loads_below_2_gib() {
        let elf = pvh_loader::ElfImage::parse(PROBE).unwrap();
        assert_eq!(elf.class, pvh_loader::ElfClass::Elf64);
        // guests/pvh.ld puts `.text.pvh32` (the entry) first at 1 MiB.
        assert_eq!(elf.entry, 0x10_0000);
        assert_eq!(elf.reloc, None);
        assert!(elf.segments.iter().any(|s| s.executable));
        for s in &elf.segments {
            assert!(s.paddr >= 0x10_0000, "{s:?}");
            assert!(s.paddr + s.memsz <= 0x8000_0000, "{s:?}");
        }
    }
}
