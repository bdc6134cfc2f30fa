//! The initial vCPU state on real KVM (feature `kvm`): a PVH ELF whose
//! entry reads the start_info magic through EBX, and a bzImage whose 64-bit
//! entry reads "HdrS" from the zero page through RSI with paging on (so the
//! GDT, the identity map and the long-mode registers are all exercised).
//! Each guest ends with `out 0xf4, al`. Skipped (with the reason) when
//! /dev/kvm cannot be opened.
#![cfg(feature = "kvm")]

mod common;

use common::*;
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use pvh_loader::*;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const RAM: u64 = 64 << 20;

/// Runs the loaded guest to its first exit, which must be its `out 0xf4`;
/// returns (rax, the byte written, sregs).
fn run(mem: &GuestMemoryMmap, guest: &LoadedGuest) -> Option<(u64, u8, kvm_bindings::kvm_sregs)> {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            // A missing KVM is a skip on a developer's machine, a failure
            // in CI (where this machine kind always has /dev/kvm).
            assert!(
                std::env::var_os("CI").is_none(),
                "/dev/kvm is required under CI: {e}"
            );
            println!("skipped: /dev/kvm: {e}");
            return None;
        }
    };
    let vm = kvm.create_vm().unwrap();
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR).unwrap();
    vm.set_tss_address(KVM_TSS_ADDR as usize).unwrap();
    let host = mem.get_host_address(GuestAddress(0)).unwrap();
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: RAM,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is RAM bytes of `mem`, an mmap that outlives the VM
    // (both are dropped at the end of this function, the VM first).
    unsafe { vm.set_user_memory_region(region).unwrap() };
    let mut vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    vcpu.set_cpuid2(&cpuid).unwrap();
    let mut regs = vcpu.get_regs().unwrap();
    let mut sregs = vcpu.get_sregs().unwrap();
    guest.cpu.to_kvm(&mut regs, &mut sregs);
    vcpu.set_sregs(&sregs).unwrap();
    vcpu.set_regs(&regs).unwrap();
    match vcpu.run().unwrap() {
        VcpuExit::IoOut(0xf4, data) => {
            let byte = data[0];
            let sregs = vcpu.get_sregs().unwrap();
            Some((vcpu.get_regs().unwrap().rax, byte, sregs))
        }
        other => panic!("unexpected exit {other:?}"),
    }
}

#[test]
fn pvh_entry_state_runs_on_kvm() {
    // mov eax, [ebx]; out 0xf4, al; hlt
    let code = [0x8b, 0x03, 0xe6, 0xf4, 0xf4];
    let elf = Elf::new32(vec![Seg::code(0x20_0000, &code)])
        .entry4(0x20_0000)
        .build();
    let ram = kvm_ram(RAM).unwrap();
    let mem = memory(RAM as usize, 0);
    let config = BootConfig::new(Kernel::pvh_elf(&elf)).cmdline(b"x");
    let guest = load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    let Some((rax, byte, sregs)) = run(&mem, &guest) else {
        return;
    };
    assert_eq!(rax & 0xffff_ffff, 0x336e_c578, "EBX pointed at start_info");
    assert_eq!(byte, 0x78);
    assert_eq!(sregs.cs.selector, 0x08);
    assert_eq!(sregs.cr0 & 1, 1);
    assert_eq!(sregs.efer & (1 << 10), 0, "not in long mode");
}

#[test]
fn linux64_entry_state_runs_on_kvm() {
    // At load address + 0x200: mov rax, [rsi + 0x202]; out 0xf4, al; hlt
    let mut head = vec![0xf4u8; 0x400];
    head[0x200..0x209].copy_from_slice(&[0x48, 0x8b, 0x86, 0x02, 0x02, 0x00, 0x00, 0xe6, 0xf4]);
    let bz = Bz::default().head(head).build();
    let ram = kvm_ram(RAM).unwrap();
    let mem = memory(RAM as usize, 0);
    let config = BootConfig::new(Kernel::linux64(&bz)).cmdline(b"x");
    let guest = load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    let Some((rax, byte, sregs)) = run(&mem, &guest) else {
        return;
    };
    assert_eq!(
        rax & 0xffff_ffff,
        u64::from(u32::from_le_bytes(*b"HdrS")),
        "RSI pointed at the zero page"
    );
    assert_eq!(byte, b'H');
    assert_eq!(sregs.cs.selector, 0x10);
    assert_ne!(sregs.efer & (1 << 10), 0, "long mode active");
}
