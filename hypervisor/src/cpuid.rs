//! The CPUID table a vCPU sees: KVM's supported set, marked as running under
//! a hypervisor, with this vCPU's APIC ID, and the TSC-deadline timer when
//! KVM emulates it.
//!
//! `KVM_GET_SUPPORTED_CPUID` leaves out the TSC-deadline bit (leaf 1 ECX
//! bit 24) even where KVM emulates the timer: a VMM must check
//! `KVM_CAP_TSC_DEADLINE_TIMER` and set it itself, as QEMU, Firecracker and
//! Cloud Hypervisor do. Without it Linux programs its local APIC timer
//! through the initial-count register instead of one `IA32_TSC_DEADLINE`
//! write per timer event (and the L2 guests of docs/benchmarks.md showed
//! `tsc_deadline_timer` under Cloud Hypervisor but not under pvh).

use kvm_bindings::CpuId;

/// Leaf 1: feature information.
const LEAF_FEATURES: u32 = 0x1;
/// Leaf 0xb: extended topology (x2APIC ID in EDX).
const LEAF_TOPOLOGY: u32 = 0xb;
/// Leaf 0x1f: V2 extended topology (x2APIC ID in EDX).
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
/// Leaf 1 ECX bit 31: "running under a hypervisor".
pub const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX bit 24: the local APIC timer has TSC-deadline mode.
pub const ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EBX bits 31..24: initial APIC ID.
const EBX_APIC_ID_SHIFT: u32 = 24;

/// Adjusts `cpuid` (as returned by `KVM_GET_SUPPORTED_CPUID`) for vCPU
/// `apic_id`: sets the hypervisor bit, the TSC-deadline bit if
/// `tsc_deadline` (KVM has `KVM_CAP_TSC_DEADLINE_TIMER`), and the initial
/// (x2)APIC IDs.
pub fn patch(cpuid: &mut CpuId, apic_id: u8, tsc_deadline: bool) {
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                entry.ecx |= ECX_HYPERVISOR;
                if tsc_deadline {
                    entry.ecx |= ECX_TSC_DEADLINE;
                }
                entry.ebx = (entry.ebx & 0x00ff_ffff) | (u32::from(apic_id) << EBX_APIC_ID_SHIFT);
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => entry.edx = u32::from(apic_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn sets_hypervisor_bit_and_apic_ids() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 0,
                eax: 0x1f,
                ebx: 0x756e_6547,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0a01_0800,
                ecx: 0x0000_0001,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                edx: 7,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x1f,
                edx: 9,
                ..Default::default()
            },
        ];
        let mut cpuid = CpuId::from_entries(&entries).unwrap();
        let mut without = cpuid.clone();
        patch(&mut cpuid, 3, true);
        patch(&mut without, 3, false);
        assert_eq!(
            without.as_slice()[1].ecx,
            0x8000_0001,
            "no TSC deadline unless KVM has it"
        );
        let e = cpuid.as_slice();
        assert_eq!(
            (e[0].eax, e[0].ebx),
            (0x1f, 0x756e_6547),
            "leaf 0 untouched"
        );
        assert_eq!(e[1].ecx, 0x8100_0001);
        assert_eq!(e[1].ebx, 0x0301_0800);
        assert_eq!(e[2].edx, 3);
        assert_eq!(e[3].edx, 3);
    }
}
