//! The VMM core on this machine's KVM, in-process, without the loader: a
//! hand-assembled 32-bit guest entered in the PVH state of
//! `pvh_loader::CpuState::pvh`.

mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pvh_hypervisor::devices::ConsoleOut;
use pvh_hypervisor::vcpu::Vcpu;
use pvh_hypervisor::vm::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
use pvh_hypervisor::vm::{KvmReserved, Vm};
use pvh_hypervisor::{VmEnd, kvm, memory, runner};
use pvh_loader::layout::{GDT_ADDR, IDT_ADDR};
use pvh_loader::{CpuState, gdt};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use common::{Asm, kvm_available};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const CODE_ADDR: u64 = 0x10_0000;

/// Runs `code` at 1 MiB in 4 MiB of RAM; returns how it ended and the output.
fn run_code(code: &[u8]) -> (VmEnd, Vec<u8>) {
    let (report, out) = run_code_with(code, 1, Duration::from_secs(30));
    (report.end, out)
}

/// Runs `code` on vCPU 0 with `vcpus - 1` application processors that were
/// created but never started (they wait for INIT/SIPI inside KVM_RUN).
fn run_code_with(code: &[u8], vcpus: u8, timeout: Duration) -> (runner::RunReport, Vec<u8>) {
    let kvm = kvm::open("/dev/kvm".as_ref()).expect("open /dev/kvm");
    let mem = memory::allocate(&[(GuestAddress(0), 4 << 20)]).unwrap();
    mem.write_slice(&gdt::to_bytes(&gdt::PVH_GDT), GuestAddress(GDT_ADDR))
        .unwrap();
    mem.write_slice(code, GuestAddress(CODE_ADDR)).unwrap();
    let cap = Capture::default();
    let reserved = KvmReserved {
        tss: KVM_TSS_ADDR,
        identity_map: KVM_IDENTITY_MAP_ADDR,
    };
    let vm = Vm::new(&kvm, mem, reserved, ConsoleOut::new(Box::new(cap.clone()))).unwrap();
    let all: Vec<Vcpu> = (0..vcpus)
        .map(|id| Vcpu::new(&kvm, vm.fd(), id, Arc::clone(vm.bus())).unwrap())
        .collect();
    all[0]
        .set_boot_state(&CpuState::pvh(CODE_ADDR, 0, GDT_ADDR, IDT_ADDR))
        .unwrap();
    // Also a watchdog, not a timed assertion: a broken VMM must not hang
    // the test.
    let report = runner::run(all, Some(timeout)).unwrap();
    let out = cap.0.lock().unwrap().clone();
    (report, out)
}

#[test]
fn guest_prints_on_uart_and_exits_with_code() {
    if !kvm_available("guest_prints_on_uart_and_exits_with_code") {
        return;
    }
    let code = Asm::new().print("hello\n").exit(42);
    let (end, out) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::ExitPort(42)), "{end:?}");
    assert_eq!(end.status(), 42);
    assert_eq!(out, b"hello\n");
}

#[test]
fn debugcon_output_and_i8042_reset() {
    if !kvm_available("debugcon_output_and_i8042_reset") {
        return;
    }
    let code = Asm::new()
        .mov_dx(0xe9)
        .mov_al(b'D')
        .out_dx_al()
        .mov_dx(0x64)
        .mov_al(0xfe)
        .out_dx_al()
        .exit(9);
    let (end, out) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::Reset), "{end:?}");
    assert_eq!(end.status(), 0);
    assert_eq!(out, b"D");
}

#[test]
fn triple_fault_is_reported_with_registers() {
    if !kvm_available("triple_fault_is_reported_with_registers") {
        return;
    }
    // The boot IDT has one (empty) gate: #UD (vector 6) lies beyond its
    // limit -> #GP -> #DF (also beyond) -> triple fault.
    let code = Asm::new().ud2();
    let (end, _) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::TripleFault(Some(_))), "{end:?}");
    assert_eq!(end.status(), pvh_hypervisor::status::TRIPLE_FAULT);
    let rip = end.regs().unwrap().regs.rip;
    assert_eq!(rip, CODE_ADDR, "stopped at the faulting ud2");
}

#[test]
fn parked_application_processors_are_stopped_when_the_bsp_exits() {
    if !kvm_available("parked_application_processors_are_stopped_when_the_bsp_exits") {
        return;
    }
    let code = Asm::new().print("smp").exit(11);
    let (report, out) = run_code_with(code.bytes(), 3, Duration::from_secs(30));
    assert!(
        matches!(report.end, VmEnd::ExitPort(11)),
        "{:?}",
        report.end
    );
    assert_eq!(report.by, Some(0));
    assert_eq!(out, b"smp");
    // Every vCPU thread came back (the parked ones through the kick).
    let mut ids: Vec<u8> = report.stats.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2]);
    let bsp = report.stats.iter().find(|(id, _)| *id == 0).unwrap().1;
    assert_eq!(bsp.io, 4, "three UART bytes and the exit port");
}

#[test]
fn timeout_stops_a_spinning_guest_and_reports_where() {
    if !kvm_available("timeout_stops_a_spinning_guest_and_reports_where") {
        return;
    }
    let mut code = Asm::new().mov_dx(0x3f8).mov_al(b'.').out_dx_al();
    let top = code.here();
    code = code.jmp_to(top);
    let (report, out) = run_code_with(code.bytes(), 1, Duration::from_millis(300));
    assert_eq!(out, b".");
    assert_eq!(report.by, None);
    match &report.end {
        VmEnd::Timeout { after, regs } => {
            assert_eq!(*after, Duration::from_millis(300));
            let rip = regs
                .as_ref()
                .expect("registers of the stopped vCPU")
                .regs
                .rip;
            assert_eq!(rip, CODE_ADDR + top as u64, "stopped in the jmp $");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.end.status(), pvh_hypervisor::status::TIMEOUT);
}

#[test]
fn string_port_io_is_split_into_single_accesses() {
    if !kvm_available("string_port_io_is_split_into_single_accesses") {
        return;
    }
    const BUF: u32 = 0x20_0000;
    let msg = b"string I/O\n";
    let build = |msg_addr: u32| {
        Asm::new()
            // CMOS index 0x0b (status B, 0x02), then read it three times
            // with one `rep insb`.
            .mov_dx(0x70)
            .mov_al(0x0b)
            .out_dx_al()
            .mov_dx(0x71)
            .mov_edi(BUF)
            .mov_ecx(3)
            .rep_insb()
            // The message to the UART with one `rep outsb`.
            .mov_dx(0x3f8)
            .mov_esi(msg_addr)
            .mov_ecx(msg.len() as u32)
            .rep_outsb()
            // The third byte read to the exit port: status B, i.e. 2.
            .mov_dx(0xf4)
            .mov_esi(BUF + 2)
            .mov_ecx(1)
            .rep_outsb()
            .hlt()
    };
    let len = build(0).bytes().len();
    let code = build(CODE_ADDR as u32 + len as u32).raw(msg);
    let (end, out) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::ExitPort(2)), "{end:?}");
    assert_eq!(out, msg);
}

#[test]
fn executing_from_unbacked_memory_is_a_kvm_internal_error() {
    if !kvm_available("executing_from_unbacked_memory_is_a_kvm_internal_error") {
        return;
    }
    // jmp to 3.25 GiB, inside the MMIO hole: no RAM, no device. KVM cannot
    // fetch the instruction and gives up (emulation failure).
    let code = Asm::new().mov_eax(0xd000_0000).raw(&[0xff, 0xe0]);
    let (end, _) = run_code(code.bytes());
    match &end {
        VmEnd::InternalError { suberror, regs, .. } => {
            assert_eq!(*suberror, kvm_bindings::KVM_INTERNAL_ERROR_EMULATION);
            assert_eq!(regs.as_ref().unwrap().regs.rip, 0xd000_0000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(end.status(), pvh_hypervisor::status::KVM_INTERNAL);
}

#[test]
fn dropping_the_vm_takes_guest_ram_away_from_kvm_first() {
    if !kvm_available("dropping_the_vm_takes_guest_ram_away_from_kvm_first") {
        return;
    }
    let kvm = kvm::open("/dev/kvm".as_ref()).unwrap();
    let mem = memory::allocate(&[(GuestAddress(0), 4 << 20)]).unwrap();
    mem.write_slice(&gdt::to_bytes(&gdt::PVH_GDT), GuestAddress(GDT_ADDR))
        .unwrap();
    mem.write_slice(Asm::new().exit(1).bytes(), GuestAddress(CODE_ADDR))
        .unwrap();
    let reserved = KvmReserved {
        tss: KVM_TSS_ADDR,
        identity_map: KVM_IDENTITY_MAP_ADDR,
    };
    let vm = Vm::new(&kvm, mem, reserved, ConsoleOut::new(Box::new(io::sink()))).unwrap();
    let vcpu = Vcpu::new(&kvm, vm.fd(), 0, Arc::clone(vm.bus())).unwrap();
    vcpu.set_boot_state(&CpuState::pvh(CODE_ADDR, 0, GDT_ADDR, IDT_ADDR))
        .unwrap();
    let old_host = vm.memory().get_host_address(GuestAddress(0)).unwrap() as usize;
    // The vCPU (and so KVM's VM) outlives the Vm and its RAM mapping.
    drop(vm);
    // Host memory mapped right after usually lands where guest RAM was: put
    // a guest that would exit with 1 there. If KVM still had the slot, the
    // vCPU would run it.
    let reuse = memory::allocate(&[(GuestAddress(0), 4 << 20)]).unwrap();
    reuse
        .write_slice(&gdt::to_bytes(&gdt::PVH_GDT), GuestAddress(GDT_ADDR))
        .unwrap();
    reuse
        .write_slice(Asm::new().exit(1).bytes(), GuestAddress(CODE_ADDR))
        .unwrap();
    let new_host = reuse.get_host_address(GuestAddress(0)).unwrap() as usize;
    eprintln!("host mapping reused: {}", old_host == new_host);
    let report = runner::run(vec![vcpu], Some(Duration::from_secs(30))).unwrap();
    // With the slots gone the code at 1 MiB is not RAM any more: KVM cannot
    // fetch it (and does not run the stale mapping, which would exit with 1
    // or fail KVM_RUN with EFAULT).
    assert!(
        matches!(
            report.end,
            VmEnd::InternalError {
                suberror: kvm_bindings::KVM_INTERNAL_ERROR_EMULATION,
                ..
            }
        ),
        "{:?}",
        report.end
    );
}

#[test]
fn s5_written_to_the_sleep_control_port_powers_off() {
    if !kvm_available("s5_written_to_the_sleep_control_port_powers_off") {
        return;
    }
    // SLP_TYP = 5 (the DSDT's _S5_) in bits 4:2, SLP_EN = bit 5: 0x34.
    let code = Asm::new().mov_dx(0x3c0).mov_al(0x34).out_dx_al().exit(9);
    let (end, _) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::PowerOff), "{end:?}");
    assert_eq!(end.status(), 0);
    assert_eq!(end.to_string(), "guest powered off");
}

#[test]
fn other_sleep_control_values_do_not_end_the_guest() {
    if !kvm_available("other_sleep_control_values_do_not_end_the_guest") {
        return;
    }
    // WAK_STS clear (what ACPICA writes first), S5 without SLP_EN, S3 with
    // SLP_EN: the guest goes on to the exit port.
    let code = Asm::new()
        .mov_dx(0x3c0)
        .mov_al(0x80)
        .out_dx_al()
        .mov_al(0x14)
        .out_dx_al()
        .mov_al(0x2c)
        .out_dx_al()
        .exit(9);
    let (end, _) = run_code(code.bytes());
    assert!(matches!(end, VmEnd::ExitPort(9)), "{end:?}");
}

#[test]
fn the_uart_irqfd_is_registered_when_first_raised() {
    use pvh_hypervisor::devices::PortDevice;
    if !kvm_available("the_uart_irqfd_is_registered_when_first_raised") {
        return;
    }
    let kvm = kvm::open("/dev/kvm".as_ref()).expect("open /dev/kvm");
    let mem = memory::allocate(&[(GuestAddress(0), 4 << 20)]).unwrap();
    let reserved = KvmReserved {
        tss: KVM_TSS_ADDR,
        identity_map: KVM_IDENTITY_MAP_ADDR,
    };
    let vm = Vm::new(&kvm, mem, reserved, ConsoleOut::new(Box::new(io::sink()))).unwrap();
    let mut uart = vm.uart().lock().unwrap();
    // Built, not raised: KVM has no irqfd for it yet.
    assert!(!uart.irq().registered());
    // IER = THR empty: a 16550 with an empty THR raises it at once.
    uart.write(1, &[0x02]).expect("KVM takes the irqfd");
    assert!(uart.irq().registered());
    // A clone (the RTC's timer thread holds one) shares the registration.
    assert!(uart.irq().try_clone().unwrap().registered());
}
