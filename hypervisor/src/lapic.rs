//! Local APIC LINT0/LINT1 wiring (MP spec "virtual wire" mode): LINT0 takes
//! the 8259 PIC's interrupts as ExtINT, LINT1 is the NMI line. Linux expects
//! this of the firmware when it finds no MP table or ACPI MADT.

use kvm_bindings::kvm_lapic_state;

/// LVT LINT0 register offset in the APIC page.
const APIC_LVT0: usize = 0x350;
/// LVT LINT1 register offset in the APIC page.
const APIC_LVT1: usize = 0x360;
/// Delivery mode field, bits 10..8.
const DELIVERY_MODE_MASK: u32 = 0x700;
/// Delivery mode NMI.
const MODE_NMI: u32 = 0x400;
/// Delivery mode ExtINT.
const MODE_EXTINT: u32 = 0x700;

fn get(state: &kvm_lapic_state, off: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, dst) in b.iter_mut().enumerate() {
        // c_char is i8 on x86: reinterpret the byte.
        *dst = state.regs.get(off + i).copied().unwrap_or(0) as u8;
    }
    u32::from_le_bytes(b)
}

fn set(state: &mut kvm_lapic_state, off: usize, v: u32) {
    for (i, byte) in v.to_le_bytes().into_iter().enumerate() {
        if let Some(dst) = state.regs.get_mut(off + i) {
            *dst = byte as _;
        }
    }
}

/// Sets LINT0 to ExtINT and LINT1 to NMI, keeping the other LVT bits.
pub fn set_virtual_wire(state: &mut kvm_lapic_state) {
    let lvt0 = get(state, APIC_LVT0);
    set(state, APIC_LVT0, (lvt0 & !DELIVERY_MODE_MASK) | MODE_EXTINT);
    let lvt1 = get(state, APIC_LVT1);
    set(state, APIC_LVT1, (lvt1 & !DELIVERY_MODE_MASK) | MODE_NMI);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_delivery_modes_only() {
        let mut s = kvm_lapic_state::default();
        set(&mut s, APIC_LVT0, 0x0001_0000); // masked, fixed
        set(&mut s, APIC_LVT1, 0x0001_0030);
        set_virtual_wire(&mut s);
        assert_eq!(get(&s, APIC_LVT0), 0x0001_0700);
        assert_eq!(get(&s, APIC_LVT1), 0x0001_0430);
        assert_eq!(s.regs[0x350] as u8, 0x00);
        assert_eq!(s.regs[0x351] as u8, 0x07);
    }
}
