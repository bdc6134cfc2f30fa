//! The PVH entry: the ELF note, the 32-bit entry code and the switch to
//! long mode, then the Rust side of start-up.
//!
//! The PVH ABI (Xen `docs/misc/pvh.pandoc`) promises only 32-bit protected
//! mode with flat CS/DS/ES, paging off, and EBX = the start_info's physical
//! address. So the entry code: first records the CPU state it was handed
//! ([`entry_state`], laid out as [`EntryState`]: control registers, EFER,
//! EFLAGS, selectors, GDTR/IDTR and the hypervisor's GDT, whether `.bss`
//! was zero), touching nothing but that record and ESP; clears DF and IF; loads its own GDT and
//! segment registers; zeroes `.bss` (tables and stack live there; a loader
//! that skipped it must not matter); fills the boot page tables (identity
//! map of 4 GiB with 2 MiB pages, see [`paging`](super::paging)); enables
//! PAE, EFER.LME and paging; far-jumps to 64-bit code; sets the stack and
//! calls [`start64`] with the start_info address.

use super::BootCell;
use super::paging::{BOOT_TABLES, BootTables, ENTRIES, SIZE_2M, Table};
use crate::conformance::cpu::{
    BSS_ALL_ZERO, ENTRY_STATE_MAGIC, ES_CANARY, EntryState, GDT_COPY_LEN, SS_CANARY,
};
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

/// The record the entry code fills before it changes anything. In `.data`:
/// the same code zeroes `.bss` afterwards.
#[unsafe(link_section = ".data.pvh_entry_state")]
static ENTRY_STATE: BootCell<EntryState> = BootCell::new(EntryState::ZERO);

/// The CPU state the hypervisor handed over at the PVH entry point, as the
/// entry code recorded it (see [`crate::conformance::cpu`]). If
/// [`EntryState::captured`] is false, the record's writes did not land
/// (DS's base was not 0).
pub fn entry_state() -> &'static EntryState {
    // SAFETY: only the entry code writes the record, before any Rust code
    // runs; from then on it is only read.
    unsafe { &*ENTRY_STATE.get() }
}

unsafe extern "C" {
    static __pvh_image_start: u8;
    static __pvh_image_end: u8;
}

/// Where the guest image is loaded (`guests/pvh.ld`'s `__pvh_image_start`
/// to `__pvh_image_end`, `.bss` included).
pub fn image() -> core::ops::Range<u64> {
    (&raw const __pvh_image_start as u64)..(&raw const __pvh_image_end as u64)
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
    // Record what the hypervisor handed over (conformance::cpu::EntryState)
    // before changing it: ESP first, then a stack inside the record for
    // pushf (EFLAGS as given, before cli/cld) and call (the EIP check).
    "mov %esp, {st}+{o_esp}",
    "mov ${st}+{o_stack_top}, %esp",
    "pushfl",
    "popl {st}+{o_eflags}",
    "cli",
    "cld",
    "mov %ebx, {st}+{o_ebx}",
    "mov %cr0, %eax",
    "mov %eax, {st}+{o_cr0}",
    "mov %cr3, %eax",
    "mov %eax, {st}+{o_cr3}",
    "mov %cr4, %eax",
    "mov %eax, {st}+{o_cr4}",
    "mov $0xc0000080, %ecx",
    "rdmsr",
    "mov %eax, {st}+{o_efer}",
    "mov %edx, {st}+{o_efer}+4",
    // The EIP the CPU reports at label 5 equals its link address only if
    // CS's base is 0 and the entry was PHYS32_ENTRY.
    "call 5f",
    "5:",
    "popl {st}+{o_eip}",
    "movl $5b, {st}+{o_eip_linked}",
    "movw %cs, {st}+{o_cs}",
    "movw %ds, {st}+{o_ds}",
    "movw %es, {st}+{o_es}",
    "movw %ss, {st}+{o_ss}",
    "movw %fs, {st}+{o_fs}",
    "movw %gs, {st}+{o_gs}",
    "str {st}+{o_tr}",
    "sldt {st}+{o_ldtr}",
    "sgdt {st}+{o_gdtr}",
    "sidt {st}+{o_idtr}",
    // Writes through SS and ES land in the record only if their bases are 0.
    "movl ${ss_canary}, %ss:{st}+{o_ss_canary}",
    "mov ${st}+{o_es_canary}, %edi",
    "mov ${es_canary}, %eax",
    "stosl",
    // The hypervisor's GDT: min(limit + 1, GDT_COPY_LEN) bytes from its base.
    "movzwl {st}+{o_gdtr}, %ecx",
    "inc %ecx",
    "cmp ${gdt_copy_len}, %ecx",
    "jbe 6f",
    "mov ${gdt_copy_len}, %ecx",
    "6:",
    "mov %ecx, {st}+{o_gdt_len}",
    "mov {st}+{o_gdtr}+2, %esi",
    "mov ${st}+{o_gdt}, %edi",
    "rep movsb",
    // Was .bss zero as the loader left it (ELF: p_memsz past p_filesz)?
    "mov $__pvh_bss_start, %edi",
    "mov $__pvh_bss_end, %ecx",
    "sub %edi, %ecx",
    "xor %eax, %eax",
    "repe scasb",
    "je 7f",
    "dec %edi",
    "sub $__pvh_bss_start, %edi",
    "mov %edi, {st}+{o_bss}",
    "jmp 8f",
    "7:",
    "movl ${bss_all_zero}, {st}+{o_bss}",
    "8:",
    "movl ${magic}, {st}+{o_magic}",
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
    st = sym ENTRY_STATE,
    o_esp = const offset_of!(EntryState, esp),
    o_stack_top = const offset_of!(EntryState, scratch) + size_of::<[u32; 5]>(),
    o_eflags = const offset_of!(EntryState, eflags),
    o_ebx = const offset_of!(EntryState, ebx),
    o_cr0 = const offset_of!(EntryState, cr0),
    o_cr3 = const offset_of!(EntryState, cr3),
    o_cr4 = const offset_of!(EntryState, cr4),
    o_efer = const offset_of!(EntryState, efer),
    o_eip = const offset_of!(EntryState, eip),
    o_eip_linked = const offset_of!(EntryState, eip_linked),
    o_cs = const offset_of!(EntryState, cs),
    o_ds = const offset_of!(EntryState, ds),
    o_es = const offset_of!(EntryState, es),
    o_ss = const offset_of!(EntryState, ss),
    o_fs = const offset_of!(EntryState, fs),
    o_gs = const offset_of!(EntryState, gs),
    o_tr = const offset_of!(EntryState, tr),
    o_ldtr = const offset_of!(EntryState, ldtr),
    o_gdtr = const offset_of!(EntryState, gdtr),
    o_idtr = const offset_of!(EntryState, idtr),
    o_ss_canary = const offset_of!(EntryState, ss_canary),
    o_es_canary = const offset_of!(EntryState, es_canary),
    o_gdt_len = const offset_of!(EntryState, gdt_len),
    o_gdt = const offset_of!(EntryState, gdt),
    o_bss = const offset_of!(EntryState, bss_first_nonzero),
    o_magic = const offset_of!(EntryState, magic),
    ss_canary = const SS_CANARY,
    es_canary = const ES_CANARY,
    gdt_copy_len = const GDT_COPY_LEN,
    bss_all_zero = const BSS_ALL_ZERO,
    magic = const ENTRY_STATE_MAGIC,
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
