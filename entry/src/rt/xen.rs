//! Running under Xen: detection, hypercalls, the memory map, shutdown.
//!
//! Facts from Xen's public headers (`xen/include/public/xen.h`,
//! `memory.h`, `sched.h`, `arch-x86/cpuid.h`): the CPUID leaves
//! 0x40000000 + 0x100·k carry "XenVMMXenVMM" (k > 0 when Viridian
//! leaves come first); in a 64-bit HVM guest a hypercall is `vmcall`
//! (Intel) or `vmmcall` (AMD) with the number in RAX, arguments in RDI,
//! RSI, RDX, R10, R8 and the result in RAX; `memory_op` is hypercall 12,
//! `sched_op` 29; `XENMEM_memory_map` is 9 (10 is the host's
//! `XENMEM_machine_memory_map`); `SCHEDOP_shutdown` is 2.

use core::mem::{offset_of, size_of};
#[cfg(target_os = "none")]
use pvh_bootparams::E820Entry;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `__HYPERVISOR_memory_op`.
pub const HYPERVISOR_MEMORY_OP: u64 = 12;
/// `__HYPERVISOR_sched_op`.
pub const HYPERVISOR_SCHED_OP: u64 = 29;
/// `XENMEM_memory_map`: this domain's pseudo-physical memory map.
pub const XENMEM_MEMORY_MAP: u64 = 9;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// First CPUID leaf Xen may use.
pub const CPUID_BASE_FIRST: u32 = 0x4000_0000;
/// One past the last CPUID base searched (Linux searches the same span).
pub const CPUID_BASE_END: u32 = 0x4001_0000;
/// Distance between the bases of hypervisor CPUID ranges.
pub const CPUID_BASE_STEP: u32 = 0x100;
/// "XenVMMXenVMM" as CPUID returns it in EBX, ECX, EDX.
pub const XEN_SIGNATURE: [u32; 3] = [0x566e_6558, 0x65584d4d, 0x4d4d566e];

/// `struct xen_memory_map` for a 64-bit guest: `unsigned int nr_entries`
/// (in: capacity, out: count) and a guest handle (a pointer) to an array
/// of e820 entries (`struct e820entry`, packed, 20 bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenMemoryMap {
    /// Entries the buffer holds (in) / entries written (out).
    pub nr_entries: u32,
    /// Padding before the 8-byte handle.
    pub pad: u32,
    /// Guest address of the buffer.
    pub buffer: u64,
}

const _: () = {
    assert!(size_of::<XenMemoryMap>() == 16);
    assert!(offset_of!(XenMemoryMap, nr_entries) == 0);
    assert!(offset_of!(XenMemoryMap, buffer) == 8);
};

/// `struct sched_shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedShutdown {
    /// A [`ShutdownReason`] value.
    pub reason: u32,
}

const _: () = assert!(size_of::<SchedShutdown>() == 4);

/// `SHUTDOWN_*` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Domain exited normally; clean up and kill.
    Poweroff = 0,
    /// Restart.
    Reboot = 1,
    /// Domain crashed.
    Crash = 3,
}

/// Why a Xen call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XenError {
    /// The hypercall returned an error (a negative errno).
    #[error("hypercall {op} (cmd {cmd}) failed with {rc}")]
    Hypercall {
        /// Hypercall number.
        op: u64,
        /// Sub-command.
        cmd: u64,
        /// Return value.
        rc: i64,
    },
    /// Xen said it wrote more entries than the buffer holds.
    #[error("Xen reports {count} memory-map entries for a buffer of {capacity}")]
    Overflow {
        /// Entries reported.
        count: u32,
        /// Buffer capacity.
        capacity: usize,
    },
}

/// Whether CPUID registers EBX, ECX, EDX spell "XenVMMXenVMM".
pub fn is_xen_signature(ebx: u32, ecx: u32, edx: u32) -> bool {
    [ebx, ecx, edx] == XEN_SIGNATURE
}

/// The CPUID leaf where Xen's range starts, if any, given the CPU's
/// answer `cpuid(leaf) = [eax, ebx, ecx, edx]` for hypervisor leaves.
///
/// Each hypervisor range starts with a leaf whose EAX is the range's last
/// leaf (within the range) and whose EBX, ECX, EDX name the hypervisor.
/// Hypervisors put their ranges one after another from 0x40000000 (Xen at
/// 0x40000000, or at 0x40000100 behind its Viridian leaves; KVM and
/// Hyper-V the same), so the search stops at the first base with no range
/// header instead of asking all 256 bases as Linux does: in a guest each
/// CPUID is a VM exit, and under KVM this asks three leaves instead of 256.
/// A Xen range must reach leaf base + 2 (the hypercall page leaf).
pub fn find_cpuid_base(mut cpuid: impl FnMut(u32) -> [u32; 4]) -> Option<u32> {
    for base in (CPUID_BASE_FIRST..CPUID_BASE_END).step_by(CPUID_BASE_STEP as usize) {
        let [eax, ebx, ecx, edx] = cpuid(base);
        if is_xen_signature(ebx, ecx, edx) && eax >= base + 2 {
            return Some(base);
        }
        // EAX past the range, or before its start (a leaf no hypervisor
        // defines: zeros on AMD, the highest basic leaf on Intel): no
        // range here, so none further on.
        if !(base..base + CPUID_BASE_STEP).contains(&eax) {
            return None;
        }
    }
    None
}

/// Whether the CPU vendor (CPUID leaf 0: EBX, EDX, ECX spell it) is AMD or
/// Hygon, whose hypercall instruction is `vmmcall`; everyone else (Intel,
/// Zhaoxin, ...) uses `vmcall`.
pub fn vendor_uses_vmmcall(ebx: u32, ecx: u32, edx: u32) -> bool {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&ebx.to_le_bytes());
    v[4..8].copy_from_slice(&edx.to_le_bytes());
    v[8..].copy_from_slice(&ecx.to_le_bytes());
    &v == b"AuthenticAMD" || &v == b"HygonGenuine"
}

/// Xen, as detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xen {
    /// The CPUID leaf with the signature.
    pub cpuid_base: u32,
    /// `vmmcall` (AMD) rather than `vmcall` (Intel).
    pub vmmcall: bool,
}

#[cfg(target_os = "none")]
pub use hw::detected;

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use core::arch::x86_64::__cpuid;
    use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    static BASE: AtomicU32 = AtomicU32::new(0);
    static VMMCALL: AtomicBool = AtomicBool::new(false);

    fn detect() -> Option<Xen> {
        // The hypervisor bit (CPUID.1:ECX[31]) says leaves 0x4000xxxx mean
        // something; without it they may echo the highest basic leaf.
        if __cpuid(1).ecx & (1 << 31) == 0 {
            return None;
        }
        let cpuid_base = find_cpuid_base(|leaf| {
            let r = __cpuid(leaf);
            [r.eax, r.ebx, r.ecx, r.edx]
        })?;
        let v = __cpuid(0);
        Some(Xen {
            cpuid_base,
            vmmcall: vendor_uses_vmmcall(v.ebx, v.ecx, v.edx),
        })
    }

    /// Xen, if the guest runs on it (detected once, then cached).
    pub fn detected() -> Option<Xen> {
        match STATE.load(Ordering::Relaxed) {
            ABSENT => None,
            PRESENT => Some(Xen {
                cpuid_base: BASE.load(Ordering::Relaxed),
                vmmcall: VMMCALL.load(Ordering::Relaxed),
            }),
            _ => {
                let xen = detect();
                if let Some(x) = xen {
                    BASE.store(x.cpuid_base, Ordering::Relaxed);
                    VMMCALL.store(x.vmmcall, Ordering::Relaxed);
                }
                STATE.store(
                    if xen.is_some() { PRESENT } else { ABSENT },
                    Ordering::Relaxed,
                );
                xen
            }
        }
    }

    impl Xen {
        /// A two-argument hypercall.
        ///
        /// # Safety
        /// `arg` must be what hypercall `op`/`cmd` expects (for pointer
        /// arguments: identity-mapped memory that stays valid and that Xen
        /// may write as the call documents).
        pub unsafe fn hypercall2(&self, op: u64, cmd: u64, arg: u64) -> i64 {
            let rc: i64;
            // Xen may clobber the argument registers (debug builds poison
            // them), so all five are outputs. Memory is read and written:
            // no `nomem`/`readonly`.
            if self.vmmcall {
                // SAFETY: the caller vouches for the arguments; `vmmcall`
                // traps to Xen, which returns to the next instruction.
                unsafe {
                    core::arch::asm!("vmmcall",
                        inlateout("rax") op => rc,
                        inlateout("rdi") cmd => _,
                        inlateout("rsi") arg => _,
                        lateout("rdx") _, lateout("r10") _, lateout("r8") _,
                        options(nostack));
                }
            } else {
                // SAFETY: as above, with Intel's `vmcall`.
                unsafe {
                    core::arch::asm!("vmcall",
                        inlateout("rax") op => rc,
                        inlateout("rdi") cmd => _,
                        inlateout("rsi") arg => _,
                        lateout("rdx") _, lateout("r10") _, lateout("r8") _,
                        options(nostack));
                }
            }
            rc
        }

        /// `XENMEM_memory_map`: fills `buf` with this domain's memory map
        /// and returns how many entries Xen wrote.
        pub fn memory_map(&self, buf: &mut [E820Entry]) -> Result<usize, XenError> {
            let capacity = buf.len();
            let mut map = XenMemoryMap {
                nr_entries: u32::try_from(capacity).unwrap_or(u32::MAX),
                pad: 0,
                buffer: buf.as_mut_ptr() as u64,
            };
            // SAFETY: `map` and `buf` are live, identity-mapped (the stack
            // and statics are in the image) and writable; Xen writes at most
            // `nr_entries` entries to `buffer` and updates `nr_entries`.
            let rc = unsafe {
                self.hypercall2(HYPERVISOR_MEMORY_OP, XENMEM_MEMORY_MAP, &raw mut map as u64)
            };
            if rc < 0 {
                return Err(XenError::Hypercall {
                    op: HYPERVISOR_MEMORY_OP,
                    cmd: XENMEM_MEMORY_MAP,
                    rc,
                });
            }
            let count = map.nr_entries;
            if count as usize > capacity {
                return Err(XenError::Overflow { count, capacity });
            }
            Ok(count as usize)
        }

        /// `SCHEDOP_shutdown`; returns only if Xen refuses.
        pub fn shutdown(&self, reason: ShutdownReason) -> XenError {
            let arg = SchedShutdown {
                reason: reason as u32,
            };
            // SAFETY: `arg` is a live `struct sched_shutdown` Xen only reads.
            let rc = unsafe {
                self.hypercall2(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN, &raw const arg as u64)
            };
            XenError::Hypercall {
                op: HYPERVISOR_SCHED_OP,
                cmd: SCHEDOP_SHUTDOWN,
                rc,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_decode_as_ascii() {
        // "XenV" "MMXe" "nVMM" little-endian, as in Xen's cpuid.h.
        assert!(is_xen_signature(
            u32::from_le_bytes(*b"XenV"),
            u32::from_le_bytes(*b"MMXe"),
            u32::from_le_bytes(*b"nVMM")
        ));
        assert!(!is_xen_signature(
            u32::from_le_bytes(*b"KVMK"),
            u32::from_le_bytes(*b"VMKV"),
            u32::from_le_bytes(*b"M\0\0\0")
        ));
        // Vendor strings: EBX, EDX, ECX order.
        let amd = (*b"Auth", *b"enti", *b"cAMD");
        assert!(vendor_uses_vmmcall(
            u32::from_le_bytes(amd.0),
            u32::from_le_bytes(amd.2),
            u32::from_le_bytes(amd.1)
        ));
        let intel = (*b"Genu", *b"ineI", *b"ntel");
        assert!(!vendor_uses_vmmcall(
            u32::from_le_bytes(intel.0),
            u32::from_le_bytes(intel.2),
            u32::from_le_bytes(intel.1)
        ));
    }

    fn sig(s: &[u8; 12]) -> [u32; 3] {
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        [w(0), w(4), w(8)]
    }

    /// A CPU whose hypervisor leaves are `ranges` (base, last leaf,
    /// signature); every other leaf answers `other`. Records what was asked.
    fn cpu(
        ranges: &[(u32, u32, &[u8; 12])],
        other: [u32; 4],
    ) -> (
        impl FnMut(u32) -> [u32; 4],
        std::rc::Rc<std::cell::RefCell<Vec<u32>>>,
    ) {
        let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = asked.clone();
        let ranges: Vec<_> = ranges.iter().map(|&(b, e, s)| (b, e, sig(s))).collect();
        let f = move |leaf: u32| {
            log.borrow_mut().push(leaf);
            match ranges.iter().find(|r| r.0 == leaf) {
                Some(&(_, last, [b, c, d])) => [last, b, c, d],
                None => other,
            }
        };
        (f, asked)
    }

    const AMD_ZEROS: [u32; 4] = [0; 4];
    /// Intel's answer to an undefined leaf: the highest basic leaf's.
    const INTEL_ECHO: [u32; 4] = [0x0000_0d00, 0x0000_0340, 0x0000_0a88, 0];

    #[test]
    fn xen_is_found_at_either_base() {
        let (f, asked) = cpu(&[(0x4000_0000, 0x4000_0005, b"XenVMMXenVMM")], AMD_ZEROS);
        assert_eq!(find_cpuid_base(f), Some(0x4000_0000));
        assert_eq!(*asked.borrow(), [0x4000_0000]);
        // Viridian first (Xen with viridian=1, "Microsoft Hv"), Xen next.
        let (f, asked) = cpu(
            &[
                (0x4000_0000, 0x4000_0006, b"Microsoft Hv"),
                (0x4000_0100, 0x4000_0105, b"XenVMMXenVMM"),
            ],
            INTEL_ECHO,
        );
        assert_eq!(find_cpuid_base(f), Some(0x4000_0100));
        assert_eq!(*asked.borrow(), [0x4000_0000, 0x4000_0100]);
    }

    #[test]
    fn the_search_stops_at_the_first_base_without_a_range() {
        // KVM: its range, then nothing (zeros on AMD, an echo on Intel).
        for other in [AMD_ZEROS, INTEL_ECHO] {
            let (f, asked) = cpu(&[(0x4000_0000, 0x4000_0001, b"KVMKVMKVM\0\0\0")], other);
            assert_eq!(find_cpuid_base(f), None);
            assert_eq!(*asked.borrow(), [0x4000_0000, 0x4000_0100]);
        }
        // KVM with Hyper-V enlightenments: two ranges, then nothing.
        let (f, asked) = cpu(
            &[
                (0x4000_0000, 0x4000_000b, b"Microsoft Hv"),
                (0x4000_0100, 0x4000_0101, b"KVMKVMKVM\0\0\0"),
            ],
            AMD_ZEROS,
        );
        assert_eq!(find_cpuid_base(f), None);
        assert_eq!(asked.borrow().len(), 3);
        // A leaf whose EAX points past its 0x100 leaves is no range
        // header: what follows is not asked.
        let (f, asked) = cpu(
            &[
                (0x4000_0000, 0x4000_0200, b"KVMKVMKVM\0\0\0"),
                (0x4000_0100, 0x4000_0105, b"XenVMMXenVMM"),
            ],
            AMD_ZEROS,
        );
        assert_eq!(find_cpuid_base(f), None);
        assert_eq!(asked.borrow().len(), 1);
    }

    #[test]
    fn a_xen_range_too_short_for_the_hypercall_leaf_is_not_xen() {
        let (f, _) = cpu(&[(0x4000_0000, 0x4000_0001, b"XenVMMXenVMM")], AMD_ZEROS);
        assert_eq!(find_cpuid_base(f), None);
    }

    #[test]
    fn a_cpu_answering_a_range_header_everywhere_is_asked_256_times_at_most() {
        let mut n = 0u32;
        let found = find_cpuid_base(|leaf| {
            n += 1;
            [leaf + 1, 0, 0, 0]
        });
        assert_eq!((found, n), (None, 256));
    }
}
