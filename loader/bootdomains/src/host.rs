//! What the host tells the boot-time domain builder about itself: the boot
//! loader's name and its memory map (Xen's `boot_info.loader` and
//! `boot_info.memmap`). How much memory the host can give guests is
//! [`crate::host`]'s.

use std::path::Path;

use super::types::HostMemoryRange;

/// The boot loader's name in [`super::BootInfo::loader_name`]: pvh plays
/// the boot loader that hands the modules over.
pub const LOADER_NAME: &str = concat!("pvh ", env!("CARGO_PKG_VERSION"));

/// Where Linux publishes the firmware's memory map, one directory per
/// range with `start`, `end` (inclusive) and `type`; world-readable.
pub const MEMMAP_DIR: &str = "/sys/firmware/memmap";

/// Most ranges read: a firmware map has tens; more is not a memory map.
pub const MAX_RANGES: usize = 1024;

/// The host's memory map from [`MEMMAP_DIR`], sorted by start; empty when
/// the host does not publish one (or it cannot be read).
pub fn memory_map() -> Vec<HostMemoryRange> {
    memory_map_from(Path::new(MEMMAP_DIR))
}

/// [`memory_map`] from another directory of the same layout (tests).
pub fn memory_map_from(dir: &Path) -> Vec<HostMemoryRange> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut map: Vec<HostMemoryRange> = entries
        .filter_map(Result::ok)
        .take(MAX_RANGES)
        .filter_map(|e| range(&e.path()))
        .collect();
    map.sort_by_key(|r| (r.start, r.end));
    map
}

/// One range directory, or `None` if any of its files is missing or not
/// what the kernel writes.
fn range(dir: &Path) -> Option<HostMemoryRange> {
    let read = |name: &str| -> Option<String> {
        use std::io::Read;
        // The kernel writes a short line; read no more than a page.
        let mut s = String::new();
        std::fs::File::open(dir.join(name))
            .ok()?
            .take(4096)
            .read_to_string(&mut s)
            .ok()?;
        Some(s.trim().to_owned())
    };
    let number = |s: String| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let start = number(read("start")?)?;
    let last = number(read("end")?)?;
    let kind = read("type")?;
    (last >= start).then(|| HostMemoryRange {
        start,
        end: last.saturating_add(1),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sysfs_layout() {
        let dir = std::env::temp_dir().join(format!("pvh-memmap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (i, (start, end, kind)) in [
            ("0x100000", "0x7fffffff", "System RAM"),
            ("0x0", "0x9fbff", "System RAM"),
            ("0x9fc00", "0x9ffff", "Reserved"),
        ]
        .iter()
        .enumerate()
        {
            let d = dir.join(i.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("start"), format!("{start}\n")).unwrap();
            std::fs::write(d.join("end"), format!("{end}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
        }
        // A range with a missing file is skipped.
        std::fs::create_dir_all(dir.join("9")).unwrap();
        let map = memory_map_from(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let r = |start, end, kind: &str| HostMemoryRange {
            start,
            end,
            kind: kind.into(),
        };
        assert_eq!(
            map,
            vec![
                r(0, 0x9fc00, "System RAM"),
                r(0x9fc00, 0xa0000, "Reserved"),
                r(0x10_0000, 0x8000_0000, "System RAM"),
            ]
        );
        assert!(memory_map_from(Path::new("/nonexistent/pvh")).is_empty());
    }
}
