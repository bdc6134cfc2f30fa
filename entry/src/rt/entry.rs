//! The PVH entry: the ELF note, the 32-bit entry code and the switch to
//! long mode, then the Rust side of start-up.
//!
//! The PVH ABI (Xen `docs/misc/pvh.pandoc`) promises only 32-bit protected
//! mode with flat CS/DS/ES, paging off, and EBX = the start_info's physical
//! address. So the entry code: clears DF and IF; loads its own GDT and
//! segment registers; zeroes `.bss` (tables and stack live there; a loader
//! that skipped it must not matter); fills the boot page tables (identity
//! map of 4 GiB with 2 MiB pages, see [`paging`](super::paging)); enables
//! PAE, EFER.LME and paging; far-jumps to 64-bit code; sets the stack and
//! calls [`start64`] with the start_info address.

use super::paging::{BOOT_TABLES, BootTables, ENTRIES, SIZE_2M, Table};
use crate::elfnote::{Phys32EntryNote, XEN_ELFNOTE_PHYS32_ENTRY};
use crate::machine::gdt;
use core::mem::{offset_of, size_of};

/// Boot stack size.
pub const STACK_SIZE: usize = 64 * 1024;
/// GDT selector of the 32-bit code segment.
pub const CODE32_SELECTOR: u16 = gdt::rt::CODE32;
/// GDT selector of the 64-bit code segment.
pub const CODE64_SELECTOR: u16 = gdt::rt::CODE64;
/// GDT selector of the data segment.
pub const DATA_SELECTOR: u16 = gdt::rt::DATA;

/// What the runtime hands the guest's main function.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// Physical address of the `hvm_start_info` (EBX at entry), unchecked:
    /// read it with [`StartInfoView`](crate::StartInfoView).
    pub start_info: u64,
    /// Xen, if the guest runs on it.
    pub xen: Option<super::xen::Xen>,
}

// The note as the asm below emits it must be exactly the crate's
// `Phys32EntryNote` (name "Xen\0", type 18, 8-byte descriptor).
const _: () = {
    assert!(size_of::<Phys32EntryNote>() == 24);
    assert!(offset_of!(Phys32EntryNote, entry) == 16);
    assert!(offset_of!(BootTables, pdpt) == 0x1000);
    assert!(offset_of!(BootTables, pd) == 0x2000);
    assert!(size_of::<Table>() == 0x1000);
};

core::arch::global_asm!(
    // The PHYS32_ENTRY note: namesz, descsz, type, "Xen\0", 8-byte entry.
    ".pushsection .note.pvh, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 8",
    ".long {note_type}",
    ".asciz \"Xen\"",
    ".balign 4",
    ".quad pvh_start32",
    ".popsection",

    // GDT: `machine::gdt::RT_GDT` (null, 32-bit code, 64-bit code, data;
    // accessed bits preset so the CPU never writes to it).
    ".pushsection .rodata.pvh_gdt, \"a\"",
    ".balign 16",
    "pvh_gdt:",
    ".quad {gdt0}",
    ".quad {gdt1}",
    ".quad {gdt2}",
    ".quad {gdt3}",
    "pvh_gdt_end:",
    ".balign 8",
    "pvh_gdt_ptr:",
    ".word pvh_gdt_end - pvh_gdt - 1",
    ".quad pvh_gdt",
    ".popsection",

    // The boot stack.
    ".pushsection .bss.pvh_stack, \"aw\", @nobits",
    ".balign 16",
    "pvh_stack_bottom:",
    ".skip {stack_size}",
    "pvh_stack_top:",
    ".popsection",

    ".pushsection .text.pvh32, \"ax\", @progbits",
    ".code32",
    ".global pvh_start32",
    ".type pvh_start32, @function",
    "pvh_start32:",
    "cld",
    "cli",
    // EBX is the only input; keep it in EBP until long mode.
    "mov %ebx, %ebp",
    "lgdt pvh_gdt_ptr",
    "mov ${data}, %eax",
    "mov %ax, %ds",
    "mov %ax, %es",
    "mov %ax, %ss",
    "mov %ax, %fs",
    "mov %ax, %gs",
    "ljmp ${code32}, $1f",
    "1:",
    // Zero .bss (page tables, stack, Rust statics).
    "mov $__pvh_bss_start, %edi",
    "mov $__pvh_bss_end, %ecx",
    "sub %edi, %ecx",
    "xor %eax, %eax",
    "rep stosb",
    // PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3.
    "mov ${tables}, %esi",
    "lea 0x1003(%esi), %eax",
    "mov %eax, (%esi)",
    "lea 0x2003(%esi), %eax",
    "mov %eax, 0x1000(%esi)",
    "add $0x1000, %eax",
    "mov %eax, 0x1008(%esi)",
    "add $0x1000, %eax",
    "mov %eax, 0x1010(%esi)",
    "add $0x1000, %eax",
    "mov %eax, 0x1018(%esi)",
    // PD entries: 2048 x 2 MiB, present | writable | large.
    "xor %ecx, %ecx",
    "2:",
    "mov %ecx, %eax",
    "shl ${shift_2m}, %eax",
    "or $0x83, %eax",
    "mov %eax, 0x2000(%esi,%ecx,8)",
    "inc %ecx",
    "cmp ${pd_entries}, %ecx",
    "jb 2b",
    // CR3; CR4 = PAE alone (whatever the loader left, LA57 in particular,
    // would change how the tables are read); EFER.LME; CR0.PG (CD and NW
    // cleared).
    "mov %esi, %cr3",
    "mov $0x20, %eax",
    "mov %eax, %cr4",
    "mov $0xc0000080, %ecx",
    "rdmsr",
    "or $0x100, %eax",
    "wrmsr",
    "mov %cr0, %eax",
    "and $0x9fffffff, %eax",
    "or $0x80000001, %eax",
    "mov %eax, %cr0",
    "ljmp ${code64}, $3f",

    ".code64",
    "3:",
    "mov ${data}, %eax",
    "mov %ax, %ds",
    "mov %ax, %es",
    "mov %ax, %ss",
    "mov %ax, %fs",
    "mov %ax, %gs",
    "lea pvh_stack_top(%rip), %rsp",
    // Upper halves of GPRs are undefined after the mode switch: EDI
    // zero-extends the start_info address into RDI.
    "mov %ebp, %edi",
    "xor %ebp, %ebp",
    "call {start64}",
    "4:",
    "cli",
    "hlt",
    "jmp 4b",
    ".size pvh_start32, . - pvh_start32",

    // Exception stubs, STUB_SIZE (16) bytes apart, pushing a zero error
    // code where the CPU pushes none, then the vector.
    ".balign 16",
    ".global pvh_exception_stubs",
    "pvh_exception_stubs:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".balign 16",
    ".if (\\vec == 8) || ((\\vec >= 10) && (\\vec <= 14)) || (\\vec == 17) || (\\vec == 21) || (\\vec == 29) || (\\vec == 30)",
    ".else",
    "push $0",
    ".endif",
    "push $\\vec",
    "jmp pvh_exception_common",
    ".endr",
    "pvh_exception_common:",
    "mov %rsp, %rsi",
    "mov (%rsp), %rdi",
    "and $-16, %rsp",
    "call pvh_rt_exception",
    "ud2",
    ".popsection",

    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    gdt0 = const gdt::RT_GDT[0],
    gdt1 = const gdt::RT_GDT[1],
    gdt2 = const gdt::RT_GDT[2],
    gdt3 = const gdt::RT_GDT[3],
    stack_size = const STACK_SIZE,
    data = const DATA_SELECTOR,
    code32 = const CODE32_SELECTOR,
    code64 = const CODE64_SELECTOR,
    tables = sym BOOT_TABLES,
    shift_2m = const SIZE_2M.trailing_zeros(),
    pd_entries = const ENTRIES * 4,
    start64 = sym start64,
    options(att_syntax),
);

unsafe extern "Rust" {
    /// The guest's main function, declared with [`pvh_main!`](crate::pvh_main).
    fn __pvh_rt_main(boot: BootInfo) -> !;
}

/// The first Rust code: long mode, identity map, stack. Detects Xen (which
/// picks the console), installs exception handlers and calls the guest.
extern "C" fn start64(start_info: u64) -> ! {
    let xen = super::xen::detected();
    super::idt::init(CODE64_SELECTOR);
    let boot = BootInfo { start_info, xen };
    // SAFETY: `pvh_main!` defines the symbol with exactly this signature;
    // without it the guest does not link.
    unsafe { __pvh_rt_main(boot) }
}
