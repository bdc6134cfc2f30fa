//! Peak RSS of planning and loading a kernel and an initrd (issue 11: "a
//! 65 MB vmlinux + 32 MB initrd: guest pages plus a small constant"),
//! through [`pvh_loader::input::Input`] (mapped files) or, with `--read`,
//! through `std::fs::read` (the inputs on the heap, as before), for
//! `scripts/bench-rss.sh` to print side by side.
//!
//! `rss_load KERNEL INITRD MEMORY_MIB [--read]` prints one line:
//! `peak_kib guest_kib inputs_kib anon_kib`: the peak RSS (VmHWM), the
//! guest RAM pages resident, the input mappings' resident pages (page
//! cache: shared with every reader of the file, clean, dropped by the
//! kernel under pressure without swap), and the anonymous memory resident
//! (guest pages plus the heap), each in KiB, measured after the load with
//! every input still held.

use std::path::Path;

use pvh_loader::input::Input;
use pvh_loader::{BootConfig, GuestRam, Kernel, Module, load, plan};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

type Error = Box<dyn std::error::Error>;

/// Resident KiB of the mappings of this process that `pick` selects
/// (by start address and pathname), from /proc/self/smaps.
fn resident_kib(pick: impl Fn(u64, &str) -> bool) -> Result<u64, Error> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut total = 0;
    let mut selected = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, _)) = first.split_once('-')
            && let Ok(start) = u64::from_str_radix(start, 16)
        {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            selected = pick(start, path);
        } else if selected && let Some(kib) = line.strip_prefix("Rss:") {
            total += kib.trim().trim_end_matches(" kB").trim().parse::<u64>()?;
        }
    }
    Ok(total)
}

/// A `/proc/self/status` field in KiB (`VmHWM`, `RssAnon`).
fn status_kib(field: &str) -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .ok_or(format!("no {field}"))?;
    Ok(line.trim().trim_end_matches(" kB").parse()?)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kernel_path, initrd_path, memory, rest @ ..] = &args[..] else {
        return Err("usage: rss_load KERNEL INITRD MEMORY_MIB [--read]".into());
    };
    let memory: u64 = memory.parse::<u64>()? << 20;
    let read = rest.iter().any(|a| a == "--read");
    let (kernel, initrd): (Input, Input) = if read {
        (
            std::fs::read(kernel_path)?.into(),
            std::fs::read(initrd_path)?.into(),
        )
    } else {
        let kernel = Input::open(kernel_path, memory)?;
        let initrd = Input::open(initrd_path, memory - kernel.len() as u64)?;
        (kernel, initrd)
    };
    let ram = GuestRam::new(memory)?;
    let ranges: Vec<_> = ram
        .regions()
        .iter()
        .map(|&(a, l)| (GuestAddress(a), l as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&ranges)?;
    let config = BootConfig::new(Kernel::pvh_elf(&kernel))
        .cmdline(b"console=ttyS0")
        .module(Module::new(&initrd));
    let plan = plan(&ram, &config)?;
    load(&mem, &plan)?;
    let guest: Vec<u64> = mem
        .iter()
        .map(|r| r.get_host_address(vm_memory::MemoryRegionAddress(0)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|p| p as u64)
        .collect();
    let guest_kib = resident_kib(|start, _| guest.contains(&start))?;
    let names = [Path::new(kernel_path), Path::new(initrd_path)]
        .map(|p| p.canonicalize().map(|p| p.display().to_string()));
    let inputs_kib = resident_kib(|_, path| {
        names
            .iter()
            .any(|n| n.as_ref().is_ok_and(|n| !path.is_empty() && n == path))
    })?;
    println!(
        "{} {guest_kib} {inputs_kib} {}",
        status_kib("VmHWM")?,
        status_kib("RssAnon")?
    );
    Ok(())
}
