//! The machine contract: every guest-physical address, I/O port, entry
//! offset and boot GDT that pvh's guest code (the runtime, the stub, the
//! probe) and its host code (the loader, the hypervisor's devices and ACPI
//! tables) both rely on, defined once.
//!
//! Host-only facts (where RAM is, the MMIO hole, the pages KVM itself
//! needs) stay in `pvh_loader::layout`; guest-only facts (the runtime's
//! stack size, its page-table pool) stay in the runtime. Anything both
//! sides use lives here and nowhere else: a second definition is a bug.

use core::ops::Range;
use x86_64::structures::gdt::DescriptorFlags as F;

// ---------------------------------------------------------------------------
// Guest-physical memory
// ---------------------------------------------------------------------------

/// 4 KiB.
pub const PAGE_SIZE: u64 = 0x1000;
/// 1 MiB: the lowest address for kernels and modules (below is the real-mode
/// area and the ISA window).
pub const ONE_MIB: u64 = 0x10_0000;
/// 4 GiB: what a 32-bit entry (PVH) reaches without paging.
pub const FOUR_GIB: u64 = 0x1_0000_0000;

/// Where the boot GDT goes (Firecracker's address), in page 0.
pub const GDT_ADDR: u64 = 0x500;
/// Where the empty boot IDT goes, right after the largest boot GDT.
pub const IDT_ADDR: u64 = GDT_ADDR + gdt::GDT_SIZE;
/// Lowest address the host's allocations (start_info block, stack, page
/// tables) start from: page 0 keeps the GDT and IDT, and address 0 means
/// "absent" in start_info.
pub const FIRST_ALLOC: u64 = PAGE_SIZE;
/// Lowest address for a Linux zero page (and its `SETUP_E820_EXT` node):
/// clear of the real-mode IVT and BDA and of the first 64 KiB, which Linux
/// keeps for the BIOS (`CONFIG_X86_RESERVE_LOW`) anyway.
pub const ZERO_PAGE_MIN: u64 = 0x1_0000;

/// The legacy ISA window (VGA memory and option ROMs) that is never RAM on
/// a PC: RESERVED in every memory map pvh writes or translates.
pub const ISA_WINDOW: Range<u64> = 0xa_0000..ONE_MIB;
/// The BIOS read-only area at the top of the ISA window, where a PC BIOS
/// leaves its ACPI RSDP (searched on 16-byte boundaries).
pub const BIOS_AREA: Range<u64> = 0xe_0000..ONE_MIB;
/// Where the host puts the guest's ACPI tables (RSDP first): the BIOS area,
/// backed by guest memory but RESERVED in the map, so the tables cost no
/// RAM and the legacy scan finds the RSDP too.
pub const ACPI_REGION: Range<u64> = BIOS_AREA;
/// Where the host puts the guest's MP table (Intel MultiProcessor
/// Specification 1.4), floating pointer first: the start of the BIOS
/// area's upper 64 KiB, the region Linux's `find_smp_config` scans after
/// the first KiB of RAM and the last KiB of base memory. Without a
/// floating pointer Linux reads all 64 KiB in vain on every boot (about
/// 37 ms of a nested boot, docs/benchmarks.md); with one it stops at the
/// first 16 bytes. Inside the RESERVED ISA window, so it costs no RAM.
pub const MP_TABLE_ADDR: u64 = 0xf_0000;
/// The IOAPIC's ID in every table that names it (MADT, MP table): 0, the
/// value of KVM's in-kernel IOAPIC ID register at reset, so the tables
/// and the device agree. (MP 1.4 asks for IDs unique among all APICs,
/// which a 4-bit IOAPIC ID cannot be next to 16 or more vCPUs; 64-bit
/// Linux checks IOAPIC IDs only against other IOAPICs.)
pub const IOAPIC_ID: u8 = 0;
/// Bytes of an ACPI 2.0 RSDP.
pub const RSDP_V2_LEN: u64 = 36;

/// Where `pvh wrap` puts its payload header (`crate::payload`): the stub,
/// linked below it at 1 MiB, looks here.
pub const PAYLOAD_ADDR: u64 = 0x20_0000;

/// The local APICs' MMIO base (the x86 default).
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// The IOAPIC's MMIO base (the x86 default, where KVM's in-kernel IOAPIC
/// answers).
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;

// ---------------------------------------------------------------------------
// I/O ports
// ---------------------------------------------------------------------------

/// COM1, a 16550 UART (eight registers): the guest console.
pub const COM1_PORT: u16 = 0x3f8;
/// The Bochs/QEMU/Xen debug console: one byte per write; reads back 0xE9
/// where a VMM emulates it.
pub const DEBUGCON_PORT: u16 = 0xe9;
/// The exit port with QEMU `isa-debug-exit` semantics (`iobase=0xf4`): a
/// guest write of `code` ends the VM (QEMU: status `code * 2 + 1`).
pub const EXIT_PORT: u16 = 0xf4;
/// Ports the exit device decodes (QEMU's `iosize=4`).
pub const EXIT_PORT_LEN: u16 = 4;
/// The ACPI sleep control/status register the FADT names: a write of
/// `SLP_TYP(S5) | SLP_EN` powers the guest off.
pub const SLEEP_CONTROL_PORT: u16 = 0x3c0;
/// The i8042 keyboard controller's data port (command port at +4): the
/// reset line pvh emulates.
pub const I8042_PORT: u16 = 0x60;

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// The Linux 64-bit boot protocol's entry: this far past the address the
/// protected-mode code was loaded at (`boot.rst`, "64-bit boot protocol").
pub const LINUX64_ENTRY_OFFSET: u64 = 0x200;

/// The boot GDTs: descriptor words, tables and selectors.
///
/// Descriptor words come from the `x86_64` crate's [`DescriptorFlags`](F)
/// (flat 4 GiB segments with the accessed bit set, as a CPU leaves them
/// after loading, so it never writes to the table); only the TSS, which
/// that crate builds only as a 64-bit system descriptor pointing at a Rust
/// object, is assembled from the same flags here.
pub mod gdt {
    use super::F;

    /// Flat 32-bit code, base 0, limit 4 GiB: `0x00cf9b000000ffff`.
    pub const CODE32: u64 = F::KERNEL_CODE32.bits();
    /// Flat 64-bit code: `0x00af9b000000ffff`.
    pub const CODE64: u64 = F::KERNEL_CODE64.bits();
    /// Flat 32-bit read/write data, base 0, limit 4 GiB:
    /// `0x00cf93000000ffff`.
    pub const DATA: u64 = F::KERNEL_DATA.bits();
    /// A present, busy TSS (system type 0xb: busy 32-bit TSS in legacy
    /// mode, busy 64-bit TSS in long mode), base 0, limit 0x67:
    /// `0x00008b0000000067`. PVH asks for this TR; VM entry needs a busy
    /// TSS.
    pub const TSS_BUSY: u64 =
        F::PRESENT.bits() | F::EXECUTABLE.bits() | F::WRITABLE.bits() | F::ACCESSED.bits() | 0x67;

    /// Selectors of the GDT the host gives a PVH entry (Firecracker's
    /// layout): null, code32, data, TSS.
    pub mod pvh {
        /// Code segment selector.
        pub const CS: u16 = 0x08;
        /// Data segment selector (DS, ES, FS, GS, SS).
        pub const DS: u16 = 0x10;
        /// Task register selector.
        pub const TR: u16 = 0x18;
    }

    /// Selectors of the GDT for the Linux 64-bit entry: the boot protocol
    /// wants `__BOOT_CS` = 0x10 and `__BOOT_DS` = 0x18.
    pub mod long64 {
        /// Code segment selector.
        pub const CS: u16 = 0x10;
        /// Data segment selector (DS, ES, FS, GS, SS).
        pub const DS: u16 = 0x18;
        /// Task register selector (a 16-byte system descriptor).
        pub const TR: u16 = 0x20;
    }

    /// Selectors of the guest runtime's own GDT ([`RT_GDT`]): 32-bit code
    /// for the entry, then the Linux 64-bit layout, so the stub enters Linux
    /// with the runtime's table still loaded.
    pub mod rt {
        /// 32-bit code selector (the PVH entry, before long mode).
        pub const CODE32: u16 = 0x08;
        /// 64-bit code selector.
        pub const CODE64: u16 = super::long64::CS;
        /// Data selector.
        pub const DATA: u16 = super::long64::DS;
    }

    /// The GDT the host writes for a PVH entry.
    pub const PVH_GDT: [u64; 4] = [0, CODE32, DATA, TSS_BUSY];

    /// The GDT the host writes for the Linux 64-bit entry: null, unused,
    /// code64, data, and the two words of a 16-byte TSS descriptor (upper
    /// base bits zero).
    pub const LONG64_GDT: [u64; 6] = [0, 0, CODE64, DATA, TSS_BUSY, 0];

    /// The guest runtime's GDT: null, code32, code64, data.
    pub const RT_GDT: [u64; 4] = [0, CODE32, CODE64, DATA];

    /// Bytes the host reserves for a boot GDT (the larger of its tables).
    pub const GDT_SIZE: u64 = (LONG64_GDT.len() * 8) as u64;

    /// Bytes of the empty boot IDT (one zero gate; the guest installs its
    /// own before enabling interrupts).
    pub const IDT_SIZE: u64 = 8;

    const fn at(table: &[u64], selector: u16) -> u64 {
        table[(selector >> 3) as usize]
    }

    // Every selector indexes the descriptor its name promises, in every
    // table that uses it.
    const _: () = {
        assert!(at(&PVH_GDT, pvh::CS) == CODE32);
        assert!(at(&PVH_GDT, pvh::DS) == DATA);
        assert!(at(&PVH_GDT, pvh::TR) == TSS_BUSY);
        assert!(at(&LONG64_GDT, long64::CS) == CODE64);
        assert!(at(&LONG64_GDT, long64::DS) == DATA);
        assert!(at(&LONG64_GDT, long64::TR) == TSS_BUSY);
        assert!(at(&RT_GDT, rt::CODE32) == CODE32);
        assert!(at(&RT_GDT, rt::CODE64) == CODE64);
        assert!(at(&RT_GDT, rt::DATA) == DATA);
    };
}

// The fixed addresses do not collide: page 0 holds the GDT then the IDT,
// below everything the allocators hand out; the ACPI region is inside the
// ISA window; the wrap payload sits above the 1 MiB where guests are
// linked.
const _: () = {
    assert!(IDT_ADDR + gdt::IDT_SIZE <= FIRST_ALLOC);
    assert!(FIRST_ALLOC < ZERO_PAGE_MIN && ZERO_PAGE_MIN < ISA_WINDOW.start);
    assert!(ISA_WINDOW.start <= BIOS_AREA.start && BIOS_AREA.end == ISA_WINDOW.end);
    assert!(PAYLOAD_ADDR > ONE_MIB && PAYLOAD_ADDR % PAGE_SIZE == 0);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_words_match_firecracker_and_linux() {
        // Firecracker's arch/x86_64/gdt.rs and Linux's boot GDT.
        assert_eq!(gdt::CODE32, 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt::DATA, 0x00cf_9300_0000_ffff);
        assert_eq!(gdt::CODE64, 0x00af_9b00_0000_ffff);
        assert_eq!(gdt::TSS_BUSY, 0x0000_8b00_0000_0067);
        assert_eq!(gdt::GDT_SIZE, 48);
    }

    #[test]
    fn fixed_addresses_are_the_documented_ones() {
        assert_eq!(IDT_ADDR, 0x530);
        assert_eq!(ACPI_REGION, 0xe_0000..0x10_0000);
        assert_eq!(ISA_WINDOW, 0xa_0000..0x10_0000);
        assert_eq!(ZERO_PAGE_MIN, 0x1_0000);
        assert_eq!(PAYLOAD_ADDR, 0x20_0000);
    }
}
