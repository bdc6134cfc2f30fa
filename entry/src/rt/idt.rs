//! Exception handling: an IDT whose 32 exception vectors print one line
//! (vector, error code, RIP, CR2) and exit with
//! [`ExitCode::Fault`](super::exit::ExitCode::Fault), instead of the silent
//! triple fault (a reset, or with `-no-reboot` a QEMU exit with status 0)
//! a guest without an IDT gets.

/// Exception vectors handled.
pub const EXCEPTIONS: usize = 32;
/// Bytes per entry stub (the entry code aligns each to this).
pub const STUB_SIZE: u64 = 16;

/// The 16-byte 64-bit interrupt-gate descriptor for a handler at `offset`
/// in code segment `selector`: present, DPL 0, type 0xE (interrupt gate:
/// IF cleared on entry), no IST. Layout from the Intel SDM, vol. 3,
/// "64-Bit Mode IDT".
pub const fn interrupt_gate(offset: u64, selector: u16) -> [u64; 2] {
    let low = (offset & 0xffff)
        | ((selector as u64) << 16)
        | (0x8e << 40)
        | (((offset >> 16) & 0xffff) << 48);
    [low, offset >> 32]
}

/// Whether the CPU pushes an error code for exception `vector`
/// (#DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX).
pub const fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

#[cfg(target_os = "none")]
pub(crate) use hw::init;

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::rt::BootCell;
    use crate::rt::exit::{ExitCode, exit};

    #[repr(C, align(16))]
    struct Idt([[u64; 2]; EXCEPTIONS]);

    static IDT: BootCell<Idt> = BootCell::new(Idt([[0; 2]; EXCEPTIONS]));

    unsafe extern "C" {
        /// First of the 32 entry stubs (in the entry code), `STUB_SIZE`
        /// bytes apart.
        static pvh_exception_stubs: u8;
    }

    /// Fills and loads the IDT. `code_selector` is the 64-bit code segment.
    pub(crate) fn init(code_selector: u16) {
        let base = (&raw const pvh_exception_stubs) as u64;
        let idt = IDT.get();
        for v in 0..EXCEPTIONS {
            let gate = interrupt_gate(base + v as u64 * STUB_SIZE, code_selector);
            // SAFETY: single-threaded boot code owns the IDT; nothing has
            // loaded it yet, so the CPU does not read it concurrently.
            unsafe { (*idt).0[v] = gate };
        }
        let pointer = x86_64::structures::DescriptorTablePointer {
            limit: (EXCEPTIONS * 16 - 1) as u16,
            base: x86_64::VirtAddr::new(idt as u64),
        };
        // SAFETY: the IDT is a static, so it lives forever, and each gate
        // points at a stub of the entry code in the code segment given.
        unsafe { x86_64::instructions::tables::lidt(&pointer) };
    }

    /// Called by the common stub with the vector and a pointer to what the
    /// stubs and the CPU pushed: `[vector, error code (0 if none), RIP, CS,
    /// RFLAGS, RSP, SS]`.
    #[unsafe(no_mangle)]
    extern "C" fn pvh_rt_exception(vector: u64, frame: *const [u64; 7]) -> ! {
        // SAFETY: the stub passes its stack pointer, below which the CPU
        // and the stub pushed exactly these seven words.
        let frame = unsafe { *frame };
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        crate::rt_println!(
            "exception: vector={vector} error={:#x} rip={:#x} rsp={:#x} cr2={cr2:#x}",
            frame[1],
            frame[2],
            frame[5]
        );
        exit(ExitCode::Fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_layout_matches_the_sdm() {
        let [lo, hi] = interrupt_gate(0xffff_8000_1234_5678, 0x10);
        assert_eq!(lo & 0xffff, 0x5678);
        assert_eq!((lo >> 16) & 0xffff, 0x10);
        assert_eq!((lo >> 32) & 0xff, 0, "IST 0");
        assert_eq!((lo >> 40) & 0xff, 0x8e);
        assert_eq!(lo >> 48, 0x1234);
        assert_eq!(hi, 0xffff_8000);
        assert!(has_error_code(14) && has_error_code(8) && !has_error_code(6));
    }
}
