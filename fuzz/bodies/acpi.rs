//! The ACPI tables a guest reads (the probe, through `pvh_entry::rt`):
//! the RSDP scan and check, the XSDT/RSDT and the MADT walk, over arbitrary
//! memory. Random bytes almost never carry valid checksums, so each input
//! is also tried with its checksums fixed up, which lets the walks see
//! hostile lengths and entries. Never a panic; what is accepted is
//! bounded.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_entry::SliceMemory;
use pvh_entry::rt::acpi::{self, Xsdt};
use pvh_entry::rt::rsdp;

/// Makes `bytes[..len]` sum to 0 by adjusting `bytes[at]`.
fn fix_sum(bytes: &mut [u8], at: usize, len: usize) {
    let len = len.min(bytes.len());
    if at >= len {
        return;
    }
    bytes[at] = 0;
    let sum = bytes[..len].iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = sum.wrapping_neg();
}

fn walk(mem: &SliceMemory<&[u8]>, end: u64) {
    if let Some(at) = rsdp::scan(mem, 0..end) {
        let r = rsdp::check(mem, at).expect("scan returns checked RSDPs");
        let root = if r.revision >= 2 {
            Xsdt::read(mem, r.xsdt_address)
        } else {
            Xsdt::read_rsdt(mem, u64::from(r.rsdt_address))
        };
        if let Ok(root) = root {
            assert!(u64::from(root.len()) * 4 <= u64::from(acpi::MAX_TABLE_LEN));
            for i in 0..root.len().min(64) {
                if let Some(t) = root.entry(mem, i) {
                    if let Ok(h) = acpi::table(mem, t) {
                        assert!(h.length >= 36 && h.length <= acpi::MAX_TABLE_LEN);
                    }
                    let _ = acpi::madt(mem, t);
                }
            }
        }
    }
    if let Ok(m) = acpi::madt(mem, 0) {
        let listed = u64::from(m.enabled_cpus) + u64::from(m.disabled_cpus);
        assert!(listed + u64::from(m.ioapics) + u64::from(m.other) <= end / 2);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let raw = SliceMemory::new(0, data);
    walk(&raw, data.len() as u64);

    // The same bytes with the checksums made right: an RSDP at 0 (v1 sum
    // over 20 bytes, extended over 36), and a table at 0 (its length
    // clamped to the input) for the MADT walk.
    let mut fixed = data.to_vec();
    if fixed.len() >= 36 {
        fixed[..8].copy_from_slice(b"RSD PTR ");
        fix_sum(&mut fixed, 8, 20);
        fix_sum(&mut fixed, 32, 36);
        let rsdp = SliceMemory::new(0, fixed.as_slice());
        walk(&rsdp, fixed.len() as u64);
    }
    let mut table = data.to_vec();
    if table.len() >= 44 {
        table[..4].copy_from_slice(b"APIC");
        let len = u32::from_le_bytes([table[4], table[5], table[6], table[7]]) as usize;
        let len = len.clamp(36, table.len());
        table[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        fix_sum(&mut table, 9, len);
        let mem = SliceMemory::new(0, table.as_slice());
        walk(&mem, table.len() as u64);
    }
}
