//! Prints the boot plan for a kernel, and loads it into scratch memory:
//!
//! ```text
//! cargo run -p pvh-loader --example plan -- KERNEL [pvh|linux64|pvh-unpack]
//!     [--stub STUB_ELF] [--initrd FILE] [--mem MIB] [--cmdline TEXT]
//! ```

use pvh_loader::Kernel;
use pvh_loader::{BootConfig, BootProtocol, GuestRam, Module};
use vm_memory::{GuestAddress, GuestMemoryMmap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: plan KERNEL [pvh|linux64|pvh-unpack] [--stub F] [--initrd F] [--mem MIB] [--cmdline S]";
    let kernel = std::fs::read(args.next().ok_or(usage)?)?;
    let (mut protocol, mut stub, mut initrd, mut mem_mib, mut cmdline) = (
        BootProtocol::Pvh,
        None,
        None,
        512u64,
        String::from("console=ttyS0"),
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "pvh" => protocol = BootProtocol::Pvh,
            "linux64" => protocol = BootProtocol::Linux64,
            "pvh-unpack" => protocol = BootProtocol::PvhUnpack,
            "--stub" => stub = Some(std::fs::read(args.next().ok_or(usage)?)?),
            "--initrd" => initrd = Some(std::fs::read(args.next().ok_or(usage)?)?),
            "--mem" => mem_mib = args.next().ok_or(usage)?.parse()?,
            "--cmdline" => cmdline = args.next().ok_or(usage)?,
            _ => return Err(usage.into()),
        }
    }
    let ram = GuestRam::new(mem_mib << 20)?;
    let config = BootConfig::new(Kernel::from_protocol(protocol, &kernel, stub.as_deref()))
        .cmdline(cmdline.as_bytes())
        .modules(
            initrd
                .iter()
                .map(|b| Module::new(b).cmdline(None).above_4g(false).headroom(0))
                .collect(),
        );
    let plan = pvh_loader::plan(&ram, &config)?;
    print!("{plan}");
    let ranges: Vec<_> = ram
        .regions()
        .iter()
        .map(|&(a, l)| (GuestAddress(a), l as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&ranges)?;
    let guest = pvh_loader::load(&mem, &plan)?;
    println!("{:#x?}", guest.cpu);
    Ok(())
}
