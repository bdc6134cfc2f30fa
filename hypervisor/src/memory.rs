//! Guest RAM: anonymous host mappings (vm-memory) registered with KVM as
//! memory slots.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::error::{Error, kvm_op};

/// Allocates guest RAM for `ranges` (guest-physical start, size), sorted and
/// non-overlapping.
pub fn allocate(ranges: &[(GuestAddress, usize)]) -> Result<GuestMemoryMmap, Error> {
    GuestMemoryMmap::from_ranges(ranges).map_err(Error::Memory)
}

/// Registers every region of `mem` with KVM, one slot per region.
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), Error> {
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
pub fn unregister(vm: &VmFd, mem: &GuestMemoryMmap) {
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
