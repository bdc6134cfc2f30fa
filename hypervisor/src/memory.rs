//! Guest RAM: anonymous host mappings (vm-memory) registered with KVM as
//! memory slots, laid out so KVM can back the guest with huge pages.
//!
//! Under nested paging every first touch of a guest page the hypervisor has
//! not mapped yet is a nested page fault (an exit to the host kernel; under
//! an outer hypervisor an expensive one). KVM maps 2 MiB at a time only
//! where the host memory behind a guest 2 MiB page is one transparent huge
//! page, which needs two things from the VMM:
//!
//! - the host address and the guest address agree modulo 2 MiB (KVM allows
//!   no large page in a slot where they do not): every region's mapping is
//!   2 MiB-aligned ([`HUGE_PAGE`]), which `mmap` does not promise (Linux
//!   aligns large anonymous mappings only since 6.7);
//! - transparent huge pages for the mapping: `MADV_HUGEPAGE`, so that
//!   hosts with THP in `madvise` mode (Debian's default) use them too.
//!
//! The aligned mapping is owned by the region: [`OwnedMapping`] is the
//! vm-memory bitmap of each region (a no-op for dirty tracking) and unmaps
//! the memory when the last reference to the region goes, exactly as
//! vm-memory's own anonymous regions do.

use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::bitmap::{Bitmap, WithBitmapSlice};
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
};

use crate::error::{Error, kvm_op};

/// The huge-page size guest RAM is aligned to (x86 PMD).
pub const HUGE_PAGE: usize = 2 << 20;

/// Guest RAM as the VMM sees it: vm-memory regions over mappings they own.
pub type GuestRam = GuestMemoryMmap<OwnedMapping>;

/// An anonymous mapping the region it belongs to owns: unmapped on drop.
/// It is the region's vm-memory bitmap, tracking nothing (like `()`).
#[derive(Debug)]
pub struct OwnedMapping {
    addr: usize,
    len: usize,
}

impl Drop for OwnedMapping {
    fn drop(&mut self) {
        // SAFETY: `addr..addr + len` is the mapping `map_aligned` created
        // for this owner alone; the region that used it is being dropped
        // (the owner lives inside it), so nothing refers to it any more.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

impl WithBitmapSlice<'_> for OwnedMapping {
    type S = ();
}

impl Bitmap for OwnedMapping {
    fn mark_dirty(&self, _offset: usize, _len: usize) {}

    fn dirty_at(&self, _offset: usize) -> bool {
        false
    }

    fn slice_at(&self, _offset: usize) {}
}

/// Maps `len` bytes of private anonymous memory (no swap reservation) at an
/// address aligned to `align` (a power of two, at least the page size):
/// maps `len + align` and unmaps what lies before and after the aligned
/// part.
fn map_aligned(len: usize, align: usize) -> std::io::Result<OwnedMapping> {
    let total = len
        .checked_add(align)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: a new private anonymous mapping at an address the kernel
    // chooses; no existing memory is affected.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let (head, tail) = (aligned - start, total - (aligned - start) - len);
    // SAFETY: both ranges lie inside the mapping just created and outside
    // the aligned part that is kept; nothing else uses them.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    Ok(OwnedMapping { addr: aligned, len })
}

/// Allocates guest RAM for `ranges` (guest-physical start, size), sorted and
/// non-overlapping: one region each, its host address congruent to its
/// guest address modulo [`HUGE_PAGE`], advised `MADV_HUGEPAGE`.
pub fn allocate(ranges: &[(GuestAddress, usize)]) -> Result<GuestRam, Error> {
    let mut regions = Vec::with_capacity(ranges.len());
    for &(start, len) in ranges {
        let fail = |reason: String| Error::MemoryRegion {
            addr: start.raw_value(),
            size: len as u64,
            reason,
        };
        // The guest address's offset within its huge page, so that host and
        // guest addresses are congruent (0 for every region pvh lays out).
        let offset = (start.raw_value() % HUGE_PAGE as u64) as usize;
        let mut owner = map_aligned(len + offset, HUGE_PAGE).map_err(|e| fail(e.to_string()))?;
        let host = owner.addr + offset;
        owner.len = len + offset;
        // Best effort: without THP in the host kernel (EINVAL) the guest
        // still runs, on small pages.
        // SAFETY: advice on a range of the mapping just created; it does
        // not change the memory's contents or validity.
        unsafe {
            libc::madvise(
                owner.addr as *mut libc::c_void,
                owner.len,
                libc::MADV_HUGEPAGE,
            )
        };
        // SAFETY: `host..host + len` lies inside `owner`'s mapping, which
        // the region keeps alive (the owner is its bitmap) until the region
        // is dropped.
        let builder = unsafe {
            MmapRegionBuilder::new_with_bitmap(len, owner)
                .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE)
                .with_raw_mmap_pointer(host as *mut u8)
        };
        let mapping = builder.build().map_err(|e| fail(e.to_string()))?;
        let region = GuestRegionMmap::new(mapping, start)
            .ok_or_else(|| fail("the region wraps past the end of guest memory".into()))?;
        regions.push(Arc::new(region));
    }
    GuestRam::from_arc_regions(regions).map_err(|e| Error::MemoryRegion {
        addr: ranges.first().map_or(0, |r| r.0.raw_value()),
        size: 0,
        reason: e.to_string(),
    })
}

/// Registers every region of `mem` with KVM, one slot per region.
pub fn register(vm: &VmFd, mem: &GuestRam) -> Result<(), Error> {
    for (slot, region) in mem.iter().enumerate() {
        let addr = region.start_addr().raw_value();
        let size = region.len();
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::MemoryRegion {
                addr,
                size,
                reason: e.to_string(),
            })?;
        let slot = u32::try_from(slot).map_err(|_| Error::MemoryRegion {
            addr,
            size,
            reason: "too many regions".into(),
        })?;
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: `host` is the start of a live anonymous mapping of `size`
        // bytes owned by `mem`. `Vm` owns `mem` and removes these slots
        // (`unregister`) in its `Drop` before the mapping goes away, so KVM
        // never refers to unmapped or reused host memory.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(kvm_op("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// Removes the KVM slots [`register`] created for `mem`, so KVM no longer
/// refers to its host mappings. Called before the mappings are unmapped:
/// a vCPU thread that outlived its stop request (see
/// [`crate::runner`]) must not reach host memory later mapped at the same
/// addresses. Errors are ignored: the VM is going away either way.
pub fn unregister(vm: &VmFd, mem: &GuestRam) {
    for (slot, region) in mem.iter().enumerate() {
        let Ok(slot) = u32::try_from(slot) else {
            return;
        };
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: a zero-sized region deletes the slot; KVM gets access to
        // no host memory through it.
        let _ = unsafe { vm.set_user_memory_region(region) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    /// The `/proc/self/smaps` block of the mapping that starts at `addr`.
    fn smaps_of(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{addr:x}-");
        let mut block = None::<String>;
        for line in smaps.lines() {
            let is_header = line.split_whitespace().next().is_some_and(|w| {
                w.contains('-') && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            });
            if is_header {
                if block.is_some() {
                    break;
                }
                if line.starts_with(&start) {
                    block = Some(String::new());
                }
            }
            if let Some(b) = block.as_mut() {
                b.push_str(line);
                b.push('\n');
            }
        }
        block
    }

    #[test]
    fn regions_are_huge_page_aligned_advised_and_unmapped_on_drop() {
        let ranges = [
            (GuestAddress(0), 64 << 20),
            (GuestAddress(4 << 30), 6 << 20),
        ];
        let mem = allocate(&ranges).unwrap();
        let mut hosts = Vec::new();
        for (start, len) in ranges {
            let host = mem.get_host_address(start).unwrap() as usize;
            assert_eq!(host % HUGE_PAGE, 0, "region at {start:?}");
            let block = smaps_of(host).expect("the region is mapped");
            assert!(
                block.contains(&format!("Size: {:>14} kB", len >> 10))
                    || block.contains(&format!("{} kB", len >> 10)),
                "{block}"
            );
            let flags = block.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
            assert!(
                flags.split_whitespace().any(|f| f == "hg"),
                "MADV_HUGEPAGE: {flags}"
            );
            hosts.push(host);
        }
        // Reads and writes land in the right region.
        mem.write_obj(0x1234_5678u32, GuestAddress((4 << 30) + 8))
            .unwrap();
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress((4 << 30) + 8)).unwrap(),
            0x1234_5678
        );
        assert_eq!(mem.read_obj::<u32>(GuestAddress(8)).unwrap(), 0);
        // A clone keeps the memory alive; the last reference unmaps it.
        let clone = mem.clone();
        drop(mem);
        assert!(smaps_of(hosts[0]).is_some());
        drop(clone);
        for host in hosts {
            assert!(smaps_of(host).is_none(), "{host:#x} still mapped");
        }
    }

    #[test]
    fn a_region_off_a_huge_page_boundary_is_congruent_to_its_guest_address() {
        let start = GuestAddress(0x10_3000);
        let mem = allocate(&[(start, 0x40_0000)]).unwrap();
        let host = mem.get_host_address(start).unwrap() as usize;
        assert_eq!(host % HUGE_PAGE, 0x10_3000 % HUGE_PAGE);
        mem.write_obj(7u8, GuestAddress(0x10_3000 + 0x3f_ffff))
            .unwrap();
        assert!(
            mem.write_obj(7u8, GuestAddress(0x10_3000 + 0x40_0000))
                .is_err()
        );
    }
}
