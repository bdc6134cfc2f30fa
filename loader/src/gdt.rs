//! The boot GDTs written into guest memory, and the segment registers
//! derived from them.
//!
//! The tables, descriptor words and selectors are the machine contract's
//! (`pvh_entry::machine::gdt`, shared with the guest runtime), re-exported
//! here; this module adds what only a host needs: the hidden segment state
//! a descriptor gives ([`segment`]) and the table's bytes. Tests pin every
//! word against the values Firecracker and the Linux boot protocol use.

use crate::cpu::Segment;
use pvh_entry::conformance::cpu::SegmentDescriptor;

pub use pvh_entry::machine::gdt::{
    CODE32, CODE64, DATA, GDT_SIZE, IDT_SIZE, LONG64_GDT, PVH_GDT, TSS_BUSY, long64, pvh,
};

/// The segment register state a CPU holds after loading `selector` whose
/// descriptor is `desc`: the hidden part KVM wants in `kvm_segment`.
/// Decoded by `pvh_entry`'s decoder, the one a guest uses to check what it
/// was handed (`pvh_entry::conformance::cpu`); the limit is in bytes.
pub const fn segment(selector: u16, desc: u64) -> Segment {
    let d = SegmentDescriptor::decode(desc);
    Segment {
        selector,
        base: d.base as u64,
        limit: d.limit,
        type_: d.type_,
        present: d.present,
        dpl: d.dpl,
        db: d.db,
        s: d.s,
        l: d.l,
        g: d.g,
    }
}

/// The table's bytes as written into guest memory (little-endian words).
pub fn to_bytes(table: &[u64]) -> Vec<u8> {
    table.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_words_match_firecracker_and_linux() {
        assert_eq!(CODE32, 0x00cf_9b00_0000_ffff);
        assert_eq!(DATA, 0x00cf_9300_0000_ffff);
        assert_eq!(CODE64, 0x00af_9b00_0000_ffff);
        assert_eq!(TSS_BUSY, 0x0000_8b00_0000_0067);
    }

    #[test]
    fn selectors_index_the_right_descriptors() {
        assert_eq!(PVH_GDT[usize::from(pvh::CS >> 3)], 0x00cf_9b00_0000_ffff);
        assert_eq!(PVH_GDT[usize::from(pvh::DS >> 3)], 0x00cf_9300_0000_ffff);
        assert_eq!(PVH_GDT[usize::from(pvh::TR >> 3)], 0x0000_8b00_0000_0067);
        assert_eq!(
            LONG64_GDT[usize::from(long64::CS >> 3)],
            0x00af_9b00_0000_ffff
        );
        assert_eq!(
            LONG64_GDT[usize::from(long64::DS >> 3)],
            0x00cf_9300_0000_ffff
        );
        assert_eq!(
            LONG64_GDT[usize::from(long64::TR >> 3)],
            0x0000_8b00_0000_0067
        );
        assert_eq!(LONG64_GDT[usize::from(long64::TR >> 3) + 1], 0);
    }

    #[test]
    fn segment_decoding() {
        let cs = segment(0x08, 0x00cf_9b00_0000_ffff);
        assert_eq!(
            cs,
            Segment {
                selector: 0x08,
                base: 0,
                limit: 0xffff_ffff,
                type_: 0xb,
                present: true,
                dpl: 0,
                db: true,
                s: true,
                l: false,
                g: true,
            }
        );
        let cs64 = segment(0x10, 0x00af_9b00_0000_ffff);
        assert!(cs64.l && !cs64.db && cs64.g);
        let ds = segment(0x10, 0x00cf_9300_0000_ffff);
        assert_eq!(
            (ds.type_, ds.s, ds.db, ds.limit),
            (0x3, true, true, 0xffff_ffff)
        );
        let tr = segment(0x18, 0x0000_8b00_0000_0067);
        assert_eq!(
            (tr.type_, tr.s, tr.limit, tr.g, tr.present, tr.base),
            (0xb, false, 0x67, false, true, 0)
        );
        // Base bits 0..24 and 24..32 and a 20-bit byte-granular limit.
        let odd = segment(0, 0x1200_9312_3456_789a);
        assert_eq!((odd.base, odd.limit, odd.g), (0x1212_3456, 0x789a, false));
    }

    #[test]
    fn bytes_are_little_endian_words() {
        let b = to_bytes(&PVH_GDT);
        assert_eq!(b.len(), 32);
        assert_eq!(&b[8..16], &[0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0x00]);
        assert_eq!(GDT_SIZE, 48);
    }
}
