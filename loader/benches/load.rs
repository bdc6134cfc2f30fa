//! Loading the Debian vmlinux + a 32 MiB initrd into 512 MiB of
//! GuestMemoryMmap: pvh (plan + load, all checks, start_info through the
//! one writer) against linux-loader (`Elf::load` + `PvhBootConfigurator`)
//! and against a plain copy of the same bytes. Needs
//! target/pvh-artifacts/vmlinux (scripts/fetch-artifacts.sh); without it
//! the benchmark prints why and measures nothing.

use criterion::{Criterion, criterion_group, criterion_main};
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::KernelLoader;
use linux_loader::loader::elf::Elf;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use pvh_loader::Kernel;
use pvh_loader::{BootConfig, GuestRam, Module};
use std::hint::black_box;
use std::io::Cursor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: u64 = 512 << 20;

fn vmlinux() -> Option<Vec<u8>> {
    let dir = std::env::var_os("PVH_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pvh-artifacts")
        });
    match std::fs::read(dir.join("vmlinux")) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!(
                "skipping the load benchmark: {}/vmlinux: {e}",
                dir.display()
            );
            None
        }
    }
}

fn bench(c: &mut Criterion) {
    let Some(kernel) = vmlinux() else { return };
    let initrd = vec![0x1du8; 32 << 20];
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();
    let initrd_addr = RAM - (32 << 20);
    let mut g = c.benchmark_group("load_vmlinux_32m_initrd_512m");
    g.sample_size(10);

    g.bench_function("pvh_plan_and_load", |b| {
        let ram = GuestRam::new(RAM).unwrap();
        let config = BootConfig::new(Kernel::pvh_elf(&kernel))
            .cmdline(b"console=ttyS0")
            .modules(vec![
                Module::new(&initrd)
                    .cmdline(None)
                    .above_4g(false)
                    .headroom(0),
            ]);
        b.iter(|| {
            let plan = pvh_loader::plan(&ram, &config).unwrap();
            black_box(pvh_loader::load(&mem, &plan).unwrap());
        })
    });

    g.bench_function("linux_loader_elf_and_pvh_configurator", |b| {
        b.iter(|| {
            let result = Elf::load(&mem, None, &mut Cursor::new(&kernel), None).unwrap();
            mem.write_slice(&initrd, GuestAddress(initrd_addr)).unwrap();
            let cmdline = b"console=ttyS0\0";
            mem.write_slice(cmdline, GuestAddress(0x20000)).unwrap();
            let modules = [hvm_modlist_entry {
                paddr: initrd_addr,
                size: initrd.len() as u64,
                ..Default::default()
            }];
            let memmap = [
                hvm_memmap_table_entry {
                    addr: 0,
                    size: 0x9fc00,
                    type_: 1,
                    reserved: 0,
                },
                hvm_memmap_table_entry {
                    addr: 0x10_0000,
                    size: RAM - 0x10_0000,
                    type_: 1,
                    reserved: 0,
                },
            ];
            let start_info = hvm_start_info {
                magic: pvh_entry::START_INFO_MAGIC,
                version: 1,
                nr_modules: 1,
                modlist_paddr: 0x6040,
                cmdline_paddr: 0x20000,
                memmap_paddr: 0x7000,
                memmap_entries: 2,
                ..Default::default()
            };
            let mut params = BootParams::new::<hvm_start_info>(&start_info, GuestAddress(0x6000));
            params.set_sections::<hvm_memmap_table_entry>(&memmap, GuestAddress(0x7000));
            params.set_modules::<hvm_modlist_entry>(&modules, GuestAddress(0x6040));
            PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, &mem).unwrap();
            black_box(result);
        })
    });

    g.bench_function("plain_copy", |b| {
        b.iter(|| {
            mem.write_slice(&kernel, GuestAddress(0x100_0000)).unwrap();
            mem.write_slice(&initrd, GuestAddress(initrd_addr)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
