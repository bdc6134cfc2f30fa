//! Model-specific registers a vCPU starts with.
//!
//! KVM resets every MSR to its architectural reset value, and for
//! `IA32_MTRR_DEF_TYPE` that is 0: MTRRs disabled, which architecturally
//! makes all memory uncacheable. Firmware enables them before an OS runs,
//! and every peer VMM that boots Linux without firmware does it for the
//! guest (Firecracker and Cloud Hypervisor: enabled, default type
//! write-back). Without it Linux reports "MTRRs disabled, skipping PAT
//! initialization too" and runs without PAT (no write-combining
//! mappings). (The ~37 ms pvh's L2 spent in early boot next to those lines
//! is Linux's MP-table scan, not this: docs/benchmarks.md.) Facts from the Intel SDM vol. 3A, 12.11.2.1 and
//! table 12-8 (memory type encodings); the MSR number from Linux's
//! `msr-index.h`.

use kvm_bindings::kvm_msr_entry;

/// `IA32_MTRR_DEF_TYPE`.
pub const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
/// `IA32_MTRR_DEF_TYPE.E`: MTRRs enabled.
pub const MTRR_ENABLE: u64 = 1 << 11;
/// Memory type write-back.
pub const MTRR_TYPE_WB: u64 = 6;

/// The MSRs every vCPU is given before it first runs: MTRRs enabled with
/// write-back as the default type (no variable or fixed ranges), the state
/// firmware leaves for an OS on a machine whose RAM is all write-back.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    vec![kvm_msr_entry {
        index: IA32_MTRR_DEF_TYPE,
        data: MTRR_ENABLE | MTRR_TYPE_WB,
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtrrs_start_enabled_with_write_back_default() {
        let msrs = boot_msrs();
        let def = msrs
            .iter()
            .find(|m| m.index == 0x2ff)
            .expect("IA32_MTRR_DEF_TYPE is set");
        // E (bit 11) set, FE (bit 10) clear, type 6 (WB): what Firecracker
        // and Cloud Hypervisor write.
        assert_eq!(def.data, 0x806);
    }
}
