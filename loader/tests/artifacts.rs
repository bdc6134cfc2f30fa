//! The real Debian kernel from target/pvh-artifacts (scripts/fetch-artifacts.sh):
//! vmlinux through PVH, bzImage through the Linux 64-bit protocol, through
//! pvh-unpack and through a stub. Skipped with a reason when absent; a
//! failure under CI=true.

mod common;

use common::*;
use pvh_entry::{StartInfoView, VmMemory};
use pvh_loader::*;

const RAM: u64 = 512 << 20;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// PT_LOADs as (paddr, offset, filesz, memsz), read by hand (not through
/// the loader's parser).
fn loads(elf: &[u8]) -> Vec<(u64, u64, u64, u64)> {
    let (phoff, phentsize, phnum) = (
        u64_at(elf, 0x20) as usize,
        u16_at(elf, 0x36) as usize,
        u16_at(elf, 0x38),
    );
    (0..usize::from(phnum))
        .map(|i| phoff + i * phentsize)
        .filter(|&o| u32_at(elf, o) == 1)
        .map(|o| {
            (
                u64_at(elf, o + 0x18),
                u64_at(elf, o + 8),
                u64_at(elf, o + 0x20),
                u64_at(elf, o + 0x28),
            )
        })
        .collect()
}

/// The PHYS32_ENTRY value, found by scanning for the note by hand.
fn phys32_entry(elf: &[u8]) -> u64 {
    let pat = [4u32.to_le_bytes(), 8u32.to_le_bytes(), 18u32.to_le_bytes()].concat();
    let at = elf
        .windows(16)
        .position(|w| w[..12] == pat[..] && &w[12..] == b"Xen\0")
        .expect("PHYS32_ENTRY note");
    u64_at(elf, at + 16)
}

#[test]
fn debian_vmlinux_boots_through_pvh() {
    let Some(vmlinux) = artifact("vmlinux") else {
        return;
    };
    let ram = kvm_ram(RAM).unwrap();
    let mem = memory(RAM as usize, 0xa5);
    let initrd = vec![0x1du8; 32 << 20];
    let config = BootConfig::new(Kernel::pvh_elf(&vmlinux))
        .cmdline(b"console=ttyS0 earlyprintk=ttyS0")
        .modules(vec![
            Module::new(&initrd)
                .cmdline(None)
                .above_4g(false)
                .headroom(0),
        ]);
    let plan = plan(&ram, &config).unwrap();
    let guest = load(&mem, &plan).unwrap();
    assert_eq!(guest.cpu.rip, phys32_entry(&vmlinux));
    assert_eq!(plan.relocation_delta(), 0);
    let segs = loads(&vmlinux);
    assert!(!segs.is_empty());
    for (paddr, off, filesz, memsz) in segs {
        let file = &vmlinux[off as usize..(off + filesz) as usize];
        assert!(
            read(&mem, paddr, filesz as usize) == file,
            "segment at {paddr:#x}"
        );
        if memsz > filesz {
            assert!(
                read(&mem, paddr + filesz, (memsz - filesz) as usize)
                    .iter()
                    .all(|&b| b == 0)
            );
        }
    }
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, guest.start_info).unwrap();
    let m = view.module(0).unwrap();
    assert_eq!(m.entry.size, 32 << 20);
    assert!(read(&mem, m.entry.paddr, 32 << 20) == initrd);
    println!("{plan}");
}

#[test]
fn debian_bzimage_unpacks_to_the_debian_vmlinux() {
    let (Some(bz), Some(vmlinux)) = (artifact("bzImage"), artifact("vmlinux")) else {
        return;
    };
    let image = pvh_bootparams::BzImage::parse(&bz).unwrap();
    let unpacked = unpack(&image).unwrap();
    // The packaged vmlinux is the stripped vmlinux.bin the bzImage carries.
    assert_eq!(unpacked.len(), vmlinux.len());
    assert!(unpacked == vmlinux);
    let ram = kvm_ram(RAM).unwrap();
    let config = BootConfig::new(Kernel::pvh_unpack(&bz));
    let p = plan(&ram, &config).unwrap();
    assert_eq!(p.entry(), phys32_entry(&vmlinux));
    let mem = memory(RAM as usize, 0);
    let g = load(&mem, &p).unwrap();
    let (paddr, off, filesz, _) = loads(&vmlinux)[0];
    assert!(read(&mem, paddr, filesz as usize) == vmlinux[off as usize..(off + filesz) as usize]);
    assert_eq!(g.cpu.mode, EntryMode::Protected32);
}

#[test]
fn debian_bzimage_linux64() {
    let Some(bz) = artifact("bzImage") else {
        return;
    };
    let ram = kvm_ram(RAM).unwrap();
    let mem = memory(RAM as usize + (16 << 20), 0x5a);
    let initrd = vec![0x1du8; 32 << 20];
    let config = BootConfig::new(Kernel::linux64(&bz))
        .cmdline(b"console=ttyS0")
        .modules(vec![
            Module::new(&initrd)
                .cmdline(None)
                .above_4g(false)
                .headroom(0),
        ]);
    let p = plan(&ram, &config).unwrap();
    let g = load(&mem, &p).unwrap();
    let setup = (usize::from(bz[0x1f1]) + 1) * 512;
    let pref = u64_at(&bz, 0x258);
    let k = p.find(Purpose::Kernel).unwrap();
    assert_eq!(k.start, pref);
    assert_eq!(k.len, u64::from(u32_at(&bz, 0x260)), "init_size");
    assert!(read(&mem, pref, bz.len() - setup) == bz[setup..]);
    assert_eq!(g.cpu.rip, pref + 0x200);
    let zp = read(&mem, g.zero_page.unwrap(), 4096);
    assert_eq!(
        u16_at(&zp, 0x206),
        u16_at(&bz, 0x206),
        "protocol version copied"
    );
    assert_eq!(&zp[0x202..0x206], b"HdrS");
    let m0 = p.find(Purpose::Module(0)).unwrap();
    assert_eq!(u32_at(&zp, 0x218) as u64, m0.start);
    assert_eq!(u32_at(&zp, 0x21c), 32 << 20);
    assert!(
        read(&mem, RAM, 16 << 20).iter().all(|&b| b == 0x5a),
        "guard region"
    );
}

#[test]
fn debian_bzimage_through_a_stub() {
    let Some(bz) = artifact("bzImage") else {
        return;
    };
    let stub = simple_elf().build();
    let initrd = vec![0x1du8; 32 << 20];
    let config = BootConfig::new(Kernel::Stub {
        bzimage: &bz,
        stub: &stub,
        relocation: Relocation::Preferred,
        subarch: SubarchPolicy::Pc,
    })
    .modules(vec![
        Module::new(&initrd)
            .cmdline(Some(b"initrd"))
            .above_4g(false)
            .headroom(0),
    ]);
    let ram = kvm_ram(RAM).unwrap();
    let mem = memory(RAM as usize, 0);
    let g = load(&mem, &plan(&ram, &config).unwrap()).unwrap();
    let vm = VmMemory(&mem);
    let view = StartInfoView::read(&vm, g.start_info).unwrap();
    let m0 = view.module(0).unwrap();
    assert_eq!(m0.entry.size, bz.len() as u64);
    assert!(read(&mem, m0.entry.paddr, bz.len()) == bz);
    assert_eq!(view.module(1).unwrap().entry.size, 32 << 20);
}

#[test]
fn debian_kernels_are_linux_and_test_elfs_are_not() {
    let (Some(bz), Some(vmlinux)) = (artifact("bzImage"), artifact("vmlinux")) else {
        return;
    };
    assert!(KernelImage::parse(&vmlinux).unwrap().is_linux());
    assert!(KernelImage::parse(&bz).unwrap().is_linux());
    // An ELF with only Xen notes (as the stub and the probe have).
    let elf = simple_elf().build();
    assert!(!KernelImage::parse(&elf).unwrap().is_linux());
}
