//! What `pvh` adds to a domain's command line for its machine
//! (`pvh_hypervisor::boot::fit_cmdlines_to_machine`): `pci=off` in front
//! for a Linux kernel, nothing for anything else or when the user already
//! chose. The nested Linux tests (tests/tests/nested_linux.rs) check that
//! the guest's /proc/cmdline starts with it.

mod common;

use pvh_bootdomains::{BootInfo, CliModule, SingleDomain};
use pvh_hypervisor::boot::{NO_PCI_ARG, fit_cmdlines_to_machine};
use pvh_loader::Input;

const MEMORY: u64 = 512 << 20;

/// The command line a one-domain `pvh boot` of `kernel` with `--cmdline
/// cmdline` ends up with.
fn fitted(kernel: &[u8], cmdline: &str) -> String {
    let spec = SingleDomain::new(
        CliModule::new("--kernel", Input::from(kernel.to_vec())),
        MEMORY,
    )
    .cmdline(cmdline.to_string());
    let mut info = BootInfo::single_domain(spec).unwrap();
    fit_cmdlines_to_machine(&mut info);
    info.domains[0].cmdline.clone()
}

fn read(name: &str) -> Option<Vec<u8>> {
    common::artifact(name).map(|p| std::fs::read(p).unwrap())
}

#[test]
fn a_linux_kernel_is_told_there_is_no_pci() {
    let (Some(vmlinux), Some(bz)) = (read("vmlinux"), read("bzImage")) else {
        return;
    };
    assert_eq!(NO_PCI_ARG, "pci=off");
    for kernel in [&vmlinux, &bz] {
        // In front: what follows ` -- ` is init's.
        assert_eq!(
            fitted(kernel, "console=ttyS0 -- single"),
            "pci=off console=ttyS0 -- single"
        );
        assert_eq!(fitted(kernel, ""), "pci=off");
        // The user's own pci= stands, whatever it says.
        assert_eq!(fitted(kernel, "pci=conf1 quiet"), "pci=conf1 quiet");
        assert_eq!(fitted(kernel, "quiet pci=off"), "quiet pci=off");
    }
    // Never past what the kernel takes: Debian's bzImage says 2047 bytes.
    let long = "x".repeat(2047 - NO_PCI_ARG.len());
    assert_eq!(fitted(&bz, &long), long);
    let shorter = "x".repeat(2047 - NO_PCI_ARG.len() - 1);
    assert_eq!(fitted(&bz, &shorter), format!("pci=off {shorter}"));
    assert_eq!(fitted(&vmlinux, &long), long);
}

#[test]
fn other_kernels_and_wrapped_images_are_left_alone() {
    // The probe: a PVH ELF with Xen notes only.
    assert_eq!(fitted(pvh_guests::PROBE, "a b"), "a b");
    assert_eq!(fitted(pvh_guests::PROBE, ""), "");
    let Some(bz) = read("bzImage") else {
        return;
    };
    // A wrapped kernel: its stub takes an empty command line to mean its
    // embedded one, so pvh adds nothing there either.
    let wrapped = pvh_loader::wrap::wrap(pvh_guests::STUB, &bz, None, Some("console=ttyS0"))
        .unwrap()
        .elf;
    assert_eq!(fitted(&wrapped, ""), "");
    assert_eq!(fitted(&wrapped, "quiet"), "quiet");
}
