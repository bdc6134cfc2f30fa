//! The floor VMM: create, run one exit, tear down.

use std::path::Path;
use std::time::{Duration, Instant};

use kvm_bindings::{
    KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_segment, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::guest::{CODE, ENTRY, EXIT_PORT};

/// KVM_SET_TSS_ADDR: three pages just below the 4 GiB boundary's BIOS
/// area, outside guest RAM (required on Intel, harmless elsewhere).
const TSS_ADDR: usize = 0xfffb_d000;

/// Why the floor run failed.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// A KVM ioctl (or opening the device) failed.
    #[error("{op}: {source}")]
    Kvm {
        /// The operation.
        op: &'static str,
        /// The error KVM returned.
        source: kvm_ioctls::Error,
    },
    /// Guest RAM could not be allocated or written.
    #[error("guest RAM of {size:#x} bytes: {reason}")]
    Memory {
        /// The requested size.
        size: u64,
        /// What went wrong.
        reason: String,
    },
    /// The guest exited some other way than a write to the exit port.
    #[error("unexpected vCPU exit: {0}")]
    UnexpectedExit(String),
}

/// What a floor run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorReport {
    /// The value the guest wrote to the exit port.
    pub exit_value: u32,
    /// Time from before opening `/dev/kvm` until the VM was ready to run.
    pub setup: Duration,
    /// Time in KVM_RUN until the exit.
    pub run: Duration,
    /// Time to close the vCPU and VM fds and unmap guest RAM (after the
    /// pause, if any).
    pub teardown: Duration,
}

fn kvm_op(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> FloorError {
    move |source| FloorError::Kvm { op, source }
}

/// A flat 4 GiB segment (base 0, granular limit) with `type_` and
/// selector `selector`, 32-bit.
fn flat(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        ..Default::default()
    }
}

/// What the floor VM has besides guest RAM and one vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorConfig {
    /// Guest RAM at address 0, in bytes.
    pub mem_size: u64,
    /// Create the in-kernel irqchip (PIC, IOAPIC, local APICs), as `pvh`
    /// does.
    pub irqchip: bool,
    /// Create the in-kernel PIT (needs `irqchip`), as `pvh` does.
    pub pit: bool,
    /// Sleep this long after the exit, before tearing down (for the
    /// analysis in docs/benchmarks.md: KVM's teardown waits for SRCU grace
    /// periods, whose length depends on how recently the last one ended).
    pub pause_before_teardown: Duration,
}

impl FloorConfig {
    /// What `pvh boot` creates: irqchip and PIT, with `mem_size` of RAM.
    pub const fn like_pvh(mem_size: u64) -> Self {
        Self {
            mem_size,
            irqchip: true,
            pit: true,
            pause_before_teardown: Duration::ZERO,
        }
    }
}

/// Runs the floor VM described by `config`, using the KVM device at
/// `device`.
pub fn run(device: &Path, config: FloorConfig) -> Result<FloorReport, FloorError> {
    let mem_size = config.mem_size;
    let start = Instant::now();
    let mem_err = |reason: String| FloorError::Memory {
        size: mem_size,
        reason,
    };
    let len = usize::try_from(mem_size).map_err(|_| mem_err("does not fit in usize".into()))?;
    if len < ENTRY as usize + CODE.len() {
        return Err(mem_err(format!(
            "smaller than the code's end {:#x}",
            ENTRY as usize + CODE.len()
        )));
    }
    let path = std::ffi::CString::new(device.as_os_str().as_encoded_bytes())
        .map_err(|_| mem_err("device path has a NUL".into()))?;
    let kvm = Kvm::new_with_path(&path).map_err(kvm_op("opening the KVM device"))?;
    let vm = kvm.create_vm().map_err(kvm_op("KVM_CREATE_VM"))?;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), len)])
        .map_err(|e| mem_err(e.to_string()))?;
    mem.write_slice(&CODE, GuestAddress(u64::from(ENTRY)))
        .map_err(|e| mem_err(e.to_string()))?;
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| mem_err(e.to_string()))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: mem_size,
        userspace_addr: host as u64,
    };
    // SAFETY: `host` is the start of the live anonymous mapping of
    // `mem_size` bytes that `mem` owns; `mem` outlives `vm` (it is dropped
    // after it below), so KVM never sees a dangling range.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_op("KVM_SET_USER_MEMORY_REGION"))?;
    vm.set_tss_address(TSS_ADDR)
        .map_err(kvm_op("KVM_SET_TSS_ADDR"))?;
    if config.irqchip {
        vm.create_irq_chip().map_err(kvm_op("KVM_CREATE_IRQCHIP"))?;
        if config.pit {
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit).map_err(kvm_op("KVM_CREATE_PIT2"))?;
        }
    }
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_op("KVM_CREATE_VCPU"))?;

    // The PVH entry state: flat 32-bit protected mode, paging off.
    let mut sregs = vcpu.get_sregs().map_err(kvm_op("KVM_GET_SREGS"))?;
    sregs.cs = flat(0x08, 0xb);
    let data = flat(0x10, 0x3);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr0 |= 1; // PE
    vcpu.set_sregs(&sregs).map_err(kvm_op("KVM_SET_SREGS"))?;
    let mut regs = vcpu.get_regs().map_err(kvm_op("KVM_GET_REGS"))?;
    regs.rip = u64::from(ENTRY);
    regs.rflags = 0x2;
    vcpu.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;
    let ready = Instant::now();

    // The guest's first instruction that leaves the kernel must be the
    // exit: anything else means the floor is not what it claims to be.
    let exit_value = match vcpu.run().map_err(kvm_op("KVM_RUN"))? {
        VcpuExit::IoOut(EXIT_PORT, data) => {
            let mut le = [0u8; 4];
            for (d, s) in le.iter_mut().zip(data) {
                *d = *s;
            }
            u32::from_le_bytes(le)
        }
        other => return Err(FloorError::UnexpectedExit(format!("{other:?}"))),
    };
    let ran = Instant::now();
    std::thread::sleep(config.pause_before_teardown);
    let teardown_start = Instant::now();
    drop(vcpu);
    drop(vm);
    drop(kvm);
    drop(mem);
    let done = Instant::now();
    Ok(FloorReport {
        exit_value,
        setup: ready - start,
        run: ran - ready,
        teardown: done - teardown_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvh_guests::harness;

    #[test]
    fn guest_exits_with_zero_through_the_exit_port() {
        let dev = Path::new("/dev/kvm");
        if !dev.exists() {
            return harness::skip_or_fail("/dev/kvm is absent");
        }
        for config in [
            FloorConfig::like_pvh(512 << 20),
            FloorConfig {
                irqchip: false,
                pit: false,
                mem_size: 2 << 20,
                pause_before_teardown: Duration::from_millis(1),
            },
        ] {
            let report = run(dev, config).unwrap();
            assert_eq!(report.exit_value, 0, "{config:?}");
        }
    }

    #[test]
    fn ram_too_small_for_the_code_is_an_error() {
        let err = run(Path::new("/dev/kvm"), FloorConfig::like_pvh(0x10_0000)).unwrap_err();
        assert!(
            matches!(
                err,
                FloorError::Memory {
                    size: 0x10_0000,
                    ..
                }
            ),
            "{err}"
        );
    }
}
