//! Boots a PVH kernel on KVM with kvm-ioctls, vm-memory and pvh-loader
//! alone: the least a VMM needs around the library.
//!
//! ```sh
//! cargo run -p pvh-loader --features kvm --example boot_kvm -- KERNEL [CMDLINE]
//! ```
//!
//! It creates a VM with 64 MiB of RAM, plans and loads the kernel (a PVH
//! ELF) with pvh-loader, sets the boot vCPU from the loader's initial state,
//! and runs it until the guest writes an exit code to port 0xf4 (QEMU's
//! `isa-debug-exit`), halts or shuts down. COM1 (0x3f8) and the debug port
//! (0xe9) are printed on stdout, escaped. No interrupts, timers, ACPI or
//! other devices: enough for small guests such as pvh's probe, not for Linux
//! (use the `pvh` binary, or your VMM's devices, for that).

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use pvh_loader::{BootConfig, GuestRam, Kernel, load, plan};
use std::error::Error;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Guest RAM.
const RAM: u64 = 64 << 20;
/// KVM's real-mode TSS (3 pages) and identity-map page (Intel VMX needs
/// them): below 4 GiB, outside RAM, the addresses Firecracker and pvh use.
const KVM_IDENTITY_MAP: u64 = 0xfffb_c000;
const KVM_TSS: usize = 0xfffb_d000;
/// Ports the guest talks to.
const COM1: u16 = 0x3f8;
const COM1_LSR: u16 = COM1 + 5;
const DEBUG_CONSOLE: u16 = 0xe9;
const EXIT_PORT: u16 = 0xf4;
/// Line status: transmitter holding register and transmitter empty.
const LSR_IDLE: u8 = 0x60;
/// Give up after this many exits (a guest stuck in a port loop).
const MAX_EXITS: u64 = 10_000_000;

/// How the guest ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// It wrote this code to the exit port.
    Exit(u32),
    /// It executed HLT.
    Halted,
    /// Triple fault.
    Shutdown,
}

/// What a run produced: the console bytes and how it ended.
#[derive(Debug)]
pub struct Run {
    /// COM1 and port 0xe9 output, in order.
    pub console: Vec<u8>,
    /// How the guest ended.
    pub end: End,
}

/// Boots `kernel` with `cmdline` and runs it to its end.
pub fn boot(kernel: &[u8], cmdline: &[u8]) -> Result<Run, Box<dyn Error>> {
    // Guest RAM: pvh-loader's layout with the pages KVM keeps reserved
    // (RESERVED in the guest's memory map), backed by vm-memory, registered
    // with KVM.
    let ram = GuestRam::builder(RAM)
        .reserve(
            "KVM identity map + TSS",
            KVM_IDENTITY_MAP..KVM_TSS as u64 + 0x3000,
        )
        .build()?;
    let ranges: Vec<_> = ram
        .regions()
        .iter()
        .map(|&(addr, len)| (GuestAddress(addr), len as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&ranges)?;
    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP)?;
    vm.set_tss_address(KVM_TSS)?;
    // An in-kernel local APIC (and PIC/IOAPIC) for the vCPU, as a guest
    // that probes the APIC expects.
    vm.create_irq_chip()?;

    for (slot, region) in mem.iter().enumerate() {
        let host = mem.get_host_address(region.start_addr())?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: `host` maps `memory_size` bytes that `mem` owns and keeps
        // mapped for as long as the VM exists (`vm` is declared after
        // `mem`, so it is dropped first).
        unsafe { vm.set_user_memory_region(region)? };
    }

    // The library: plan (decides and checks), then load (writes).
    let config = BootConfig::new(Kernel::pvh_elf(kernel)).cmdline(cmdline);
    let plan = plan(&ram, &config)?;
    let guest = load(&mem, &plan)?;

    // The boot vCPU: the host's supported CPUID (long mode for the guest's
    // own switch to 64-bit), then the loader's registers (feature `kvm`).
    let vcpu = vm.create_vcpu(0)?;
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?;
    vcpu.set_cpuid2(&cpuid)?;
    let mut regs = vcpu.get_regs()?;
    let mut sregs = vcpu.get_sregs()?;
    guest.cpu.to_kvm(&mut regs, &mut sregs);
    vcpu.set_sregs(&sregs)?;
    vcpu.set_regs(&regs)?;

    let mut vcpu = vcpu;
    let mut console = Vec::new();
    for _ in 0..MAX_EXITS {
        match vcpu.run()? {
            VcpuExit::IoOut(COM1 | DEBUG_CONSOLE, data) => console.extend_from_slice(data),
            VcpuExit::IoOut(EXIT_PORT, data) => {
                let mut code = [0u8; 4];
                code[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
                return Ok(Run {
                    console,
                    end: End::Exit(u32::from_le_bytes(code)),
                });
            }
            VcpuExit::IoIn(COM1_LSR, data) => data.fill(LSR_IDLE),
            // Other UART registers and absent devices: reads float high.
            VcpuExit::IoIn(_, data) => data.fill(0xff),
            VcpuExit::IoOut(..) => {}
            VcpuExit::MmioRead(_, data) => data.fill(0xff),
            VcpuExit::MmioWrite(..) => {}
            VcpuExit::Hlt => {
                return Ok(Run {
                    console,
                    end: End::Halted,
                });
            }
            VcpuExit::Shutdown => {
                return Ok(Run {
                    console,
                    end: End::Shutdown,
                });
            }
            other => return Err(format!("unexpected vCPU exit: {other:?}").into()),
        }
    }
    Err(format!("no end after {MAX_EXITS} exits").into())
}

#[allow(dead_code)] // `tests/tests/loader_example.rs` includes this file as a module.
fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: boot_kvm KERNEL [CMDLINE]".into());
    };
    let cmdline = args.next().unwrap_or_default();
    let kernel = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let run = boot(&kernel, cmdline.as_bytes())?;
    // Guest output is untrusted: escape it.
    for line in run.console.split(|&b| b == b'\n') {
        println!(
            "{}",
            line.strip_suffix(b"\r").unwrap_or(line).escape_ascii()
        );
    }
    println!("boot_kvm: {:?}", run.end);
    match run.end {
        End::Exit(0) => Ok(()),
        end => Err(format!("guest ended with {end:?}").into()),
    }
}
