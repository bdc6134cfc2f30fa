//! What the host can give guests: the one definition `pvh boot`'s
//! `--memory` check and `pvh launch`'s default `--host-memory` share.
//!
//! Guest RAM is an anonymous mapping the kernel backs on first touch, so a
//! mapping far larger than the host succeeds and the guest only dies (or
//! takes the host down with it) once it uses the memory. The limit is
//! therefore what the host could ever back: physical RAM plus swap, from
//! `sysinfo(2)` (the `MemTotal` and `SwapTotal` of `/proc/meminfo`).

use std::io;

/// The host's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    /// Physical RAM.
    pub ram: u64,
    /// Swap space.
    pub swap: u64,
}

impl HostMemory {
    /// Asks the kernel.
    pub fn query() -> io::Result<Self> {
        // SAFETY: an all-zero `sysinfo` is a valid value of this plain C
        // struct; sysinfo(2) only writes into the struct it is given.
        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable `struct sysinfo`.
        if unsafe { libc::sysinfo(&mut info) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let unit = u64::from(info.mem_unit.max(1));
        Ok(Self {
            ram: info.totalram.saturating_mul(unit),
            swap: info.totalswap.saturating_mul(unit),
        })
    }

    /// What guests can be given at most: RAM plus swap.
    pub fn limit(&self) -> u64 {
        self.ram.saturating_add(self.swap)
    }
}

/// The host's limit ([`HostMemory::limit`]), or no limit (`u64::MAX`) if
/// the kernel cannot be asked.
pub fn memory_limit() -> u64 {
    HostMemory::query().map_or(u64::MAX, |m| m.limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/meminfo` read independently of sysinfo(2).
    fn meminfo_kib(key: &str) -> u64 {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn matches_proc_meminfo() {
        let m = HostMemory::query().unwrap();
        assert_eq!(m.ram / 1024, meminfo_kib("MemTotal"));
        assert_eq!(m.swap / 1024, meminfo_kib("SwapTotal"));
        assert_eq!(m.limit(), m.ram + m.swap);
        assert!(m.ram > 0);
    }
}
