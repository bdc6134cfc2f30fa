//! One boot policy, four callers, one answer: for generated setup headers,
//! memory sizes, module sets, command lines and subarch policies, the
//! stub's decision (`pvh_entry::linux::stub::plan`, the very function the
//! stub runs, here run on the host over the memory the host loader wrote),
//! the host loader's Linux 64-bit plan, `pvh wrap` and `pvh inspect` agree:
//! the same typed error (and text) for a kernel the policy refuses, and for
//! one it takes, the addresses the rules give (checked against brute-force
//! searches written here, over what each path had placed) and zero pages
//! that are byte for byte the same except the fields that name addresses
//! each path chose (`docs/guest.md`, "One boot policy").
//!
//! Three boots of each input:
//! - `linux`: `BootProtocol::Linux64` (`pvh boot --boot-protocol linux`);
//! - `stub`: `BootProtocol::Pvh` with the stub and the bzImage as module 0
//!   (`pvh boot --kernel bzImage`, `pvh launch`), then the stub's plan;
//! - `wrapped`: `pvh wrap` output booted as a PVH ELF with no modules and
//!   no command line (what QEMU `-kernel wrapped.elf` gives), then the
//!   stub's plan: its initrd, command line and subarch from the payload.

use proptest::prelude::*;
use pvh_bootparams::{BootParams, BzImage};
use pvh_entry::linux::stub::{Inputs, Scratch, StubError, StubPlan, plan as stub_plan};
use pvh_entry::linux::{KernelNeeds, LinuxBootError, Part};
use pvh_entry::machine::PAYLOAD_ADDR;
use pvh_entry::{SliceMemory, SubarchPolicy};
use pvh_loader::inspect::inspect;
use pvh_loader::wrap::{WrapError, WrapOptions, wrap_with};
use pvh_loader::{
    BootConfig, GuestRam, Kernel, LoadError, LoadedGuest, Module, Purpose, load, plan,
};
use pvh_tests::images::SynthBz;
use std::ops::Range;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 0x1000;
/// Zero-page bytes that name addresses each path chooses (zero-page.rst,
/// boot.rst offsets).
const CHOSEN: [(Range<usize>, &str); 7] = [
    (0x0c0..0x0c4, "ext_ramdisk_image"),
    (0x0c8..0x0cc, "ext_cmd_line_ptr"),
    (0x214..0x218, "code32_start"),
    (0x218..0x21c, "ramdisk_image"),
    (0x228..0x22c, "cmd_line_ptr"),
    (0x240..0x248, "hardware_subarch_data"),
    (0x250..0x258, "setup_data"),
];

#[derive(Debug, Clone)]
struct Case {
    bz: SynthBz,
    ram: u64,
    initrd: Option<usize>,
    extra: Vec<usize>,
    cmdline: String,
    subarch: SubarchPolicy,
}

/// One way to make a header the policy refuses.
#[derive(Debug, Clone, Copy)]
enum Break {
    OldProtocol,
    No64BitEntry,
    Alignment(u32),
    InitSize,
    CmdlineSize,
}

fn case() -> impl Strategy<Value = Case> {
    // Headers the policy takes, varied where it has choices to make; a
    // third of the cases then break one rule, so every refusal comes up
    // while most cases reach the placement and zero-page comparisons.
    let bz = (
        prop_oneof![Just(0x020fu16), Just(0x020c)],
        prop_oneof![Just(3u16), Just(1)],
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop_oneof![Just(0x20_0000u32), Just(0x1000), Just(0x40_0000)],
        prop_oneof![
            4 => Just(0x100_0000u64),
            1 => Just(0),
            1 => Just(0x110_0000),
            1 => Just(0x300_0000),
            1 => Just(0x1_0000_0000)
        ],
        prop_oneof![Just(0x40_0000u32), Just(0x180_0000), Just(0x400_0000)],
        prop_oneof![
            3 => Just(0x7fff_ffffu32),
            1 => Just(0x37f_ffff),
            1 => Just(0x1ff_ffff),
            1 => Just(0)
        ],
        prop_oneof![Just(2047u32), Just(200)],
        prop_oneof![
            10 => Just(None),
            1 => Just(Some(Break::OldProtocol)),
            1 => Just(Some(Break::No64BitEntry)),
            1 => Just(Some(Break::Alignment(0x30_0000))),
            1 => Just(Some(Break::Alignment(0))),
            1 => Just(Some(Break::InitSize)),
            1 => Just(Some(Break::CmdlineSize)),
        ],
    )
        .prop_map(
            |(version, xlf, relocatable, align, pref, init, initrd_max, cmdline_size, broken)| {
                let mut bz = SynthBz::default()
                    .version(version)
                    .xloadflags(xlf)
                    .relocatable(relocatable)
                    .kernel_alignment(align)
                    .pref_address(pref)
                    .init_size(init)
                    .initrd_addr_max(initrd_max)
                    .cmdline_size(cmdline_size);
                match broken {
                    None => {}
                    Some(Break::OldProtocol) => bz.version = 0x020b,
                    Some(Break::No64BitEntry) => bz.xloadflags &= !1,
                    Some(Break::Alignment(a)) => {
                        bz.relocatable = true;
                        bz.kernel_alignment = a;
                    }
                    Some(Break::InitSize) => bz.init_size = bz.code_size() as u32 - 1,
                    Some(Break::CmdlineSize) => bz.cmdline_size = 5,
                }
                bz
            },
        );
    (
        bz,
        prop_oneof![Just(32u64), Just(48), Just(96), Just(160)],
        proptest::option::of(prop_oneof![
            Just(0x1000usize),
            Just(0x12_3456),
            Just(0x140_0000)
        ]),
        proptest::collection::vec(1usize..0x3_0000, 0..3),
        prop_oneof![Just(0usize), Just(12), Just(100)],
        prop_oneof![Just(SubarchPolicy::Pc), Just(SubarchPolicy::Xen)],
    )
        .prop_map(|(bz, ram, initrd, extra, cmdline, subarch)| Case {
            bz,
            ram: ram * MIB,
            initrd,
            extra,
            cmdline: "c".repeat(cmdline),
            subarch,
        })
}

/// Guest RAM with the loader's result, and the memory as bytes.
struct Booted {
    mem: GuestMemoryMmap,
    guest: LoadedGuest,
}

impl Booted {
    /// The RAM below 3 GiB (all of it here) as one slice.
    fn bytes(&self) -> &[u8] {
        let region = self.mem.find_region(GuestAddress(0)).unwrap();
        let ptr = self.mem.get_host_address(GuestAddress(0)).unwrap();
        // SAFETY: the region is mapped for `len` bytes from `ptr` for as
        // long as `self.mem` lives, and nothing writes it while the slice
        // is borrowed (no vCPU runs in this test).
        unsafe { std::slice::from_raw_parts(ptr, region.len() as usize) }
    }

    fn read(&self, addr: u64, len: u64) -> &[u8] {
        &self.bytes()[addr as usize..(addr + len) as usize]
    }
}

fn boot(ram: u64, config: &BootConfig<'_>) -> Result<Booted, LoadError> {
    let r = GuestRam::new(ram)?;
    let p = plan(&r, config)?;
    let regions: Vec<_> = r
        .regions()
        .iter()
        .map(|&(a, l)| (GuestAddress(a), l as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&regions).unwrap();
    let guest = load(&mem, &p)?;
    Ok(Booted { mem, guest })
}

/// The stub's decision over a booted guest's memory, its image being the
/// span of the stub's own ELF segments (those below the wrap payload),
/// what its linker symbols span.
fn run_stub<'s>(b: &Booted, scratch: &'s mut Scratch) -> Result<StubPlan<'s>, StubError> {
    let segs: Vec<_> = b
        .guest
        .placements
        .iter()
        .filter(|p| matches!(p.purpose, Purpose::Segment(_)) && p.start < PAYLOAD_ADDR)
        .collect();
    let image = (
        segs.iter().map(|p| p.start).min().unwrap(),
        segs.iter().map(|p| p.start + p.len).max().unwrap(),
    );
    let mem = SliceMemory::new(0, b.bytes());
    let inputs = Inputs::new(b.guest.start_info, image);
    stub_plan(&mem, &inputs, scratch)
}

/// What the rules say, over `taken` (ranges in use) and `ram` (usable
/// ranges), computed here from boot.rst and the documented pvh choices:
/// the kernel's runtime start, then the zero page.
struct Oracle<'a> {
    ram: &'a [Range<u64>],
    taken: Vec<Range<u64>>,
}

impl Oracle<'_> {
    fn free(&self, a: u64, len: u64) -> bool {
        let r = a..a + len;
        self.ram
            .iter()
            .any(|u| u.start <= r.start && r.end <= u.end)
            && !self
                .taken
                .iter()
                .any(|t| t.start < r.end && r.start < t.end)
    }

    fn kernel(&self, n: &KernelNeeds) -> Option<u64> {
        let window = n.init_size.div_ceil(PAGE) * PAGE;
        let limit = if n.above_4g { u64::MAX } else { 1 << 32 };
        if !n.relocatable {
            let a = n.pref_address;
            return (a + window <= limit && self.free(a, window)).then_some(a);
        }
        let top = self.ram.iter().map(|r| r.end).max().unwrap();
        let first = n.pref_address.max(MIB).div_ceil(n.align) * n.align;
        (0..)
            .map(|i| first + i * n.align)
            .take_while(|a| a + window <= top.min(limit))
            .find(|&a| self.free(a, window))
    }

    fn initrd(&self, size: u64, limit: u64) -> Option<u64> {
        let len = size.div_ceil(PAGE) * PAGE;
        let top = self.ram.iter().map(|r| r.end).max().unwrap().min(limit);
        (0..)
            .map(|i| (top - len) / PAGE * PAGE - i * PAGE)
            .take_while(|&a| a >= MIB)
            .find(|&a| self.free(a, len))
    }

    fn zero_page(&self) -> Option<u64> {
        (0x10..(1 << 20))
            .map(|p| p * PAGE)
            .find(|&a| self.free(a, PAGE))
    }
}

fn placement(b: &Booted, purpose: Purpose) -> Range<u64> {
    b.guest.find(purpose).unwrap().range()
}

/// boot.rst's runtime start for a load address.
fn runtime_start(n: &KernelNeeds, load: u64) -> u64 {
    if n.relocatable {
        load.max(n.pref_address).div_ceil(n.kernel_alignment) * n.kernel_alignment
    } else {
        n.pref_address
    }
}

fn check_page(
    what: &str,
    page: &BootParams,
    reference: &BootParams,
    subarch: SubarchPolicy,
    start_info: u64,
) -> Result<(), TestCaseError> {
    let (a, b) = (page.as_page(), reference.as_page());
    for i in 0..a.len() {
        if CHOSEN.iter().any(|(r, _)| r.contains(&i)) {
            continue;
        }
        prop_assert_eq!(a[i], b[i], "{}: zero page byte {:#x}", what, i);
    }
    prop_assert_eq!({ page.hdr.hardware_subarch }, subarch.hardware_subarch());
    let data = match subarch {
        SubarchPolicy::Pc => 0,
        SubarchPolicy::Xen => start_info,
    };
    prop_assert_eq!({ page.hdr.hardware_subarch_data }, data, "{}", what);
    prop_assert_eq!(page.hdr.loadflags & 1, 1, "{}: LOADED_HIGH", what);
    Ok(())
}

fn agree(c: &Case) -> Result<(), TestCaseError> {
    let kernel = c.bz.build();
    let first: Option<Vec<u8>> = c.initrd.map(|n| (0..n).map(|i| i as u8 ^ 0x5a).collect());
    let extra: Vec<Vec<u8>> = c.extra.iter().map(|&n| vec![0xe5; n]).collect();
    let mut modules: Vec<Module<'_>> = Vec::new();
    if let Some(i) = &first {
        modules.push(Module::new(i));
    }
    modules.extend(extra.iter().map(|e| Module::new(e)));
    let linux_cfg = BootConfig::new(Kernel::Linux64 {
        bzimage: &kernel,
        subarch: c.subarch,
    })
    .cmdline(c.cmdline.as_bytes())
    .modules(modules.clone());
    let stub_cfg = linux_cfg.clone().kernel(
        Kernel::stub(linux_cfg.kernel.image(), pvh_guests::STUB)
            .with_subarch(linux_cfg.kernel.subarch()),
    );
    // Module 0 is the initrd (the PVH convention every path follows), and
    // the wrapped image embeds it.
    let initrd: Option<&[u8]> = modules.first().map(|m| m.bytes);
    let mut wrap_options = WrapOptions::new().subarch(c.subarch);
    if let Some(initrd) = initrd {
        wrap_options = wrap_options.initrd(initrd);
    }
    if !c.cmdline.is_empty() {
        wrap_options = wrap_options.cmdline(c.cmdline.as_str());
    }

    // The image verdict: the same error from every caller, or none.
    let image = BzImage::parse(&kernel).unwrap();
    let verdict = KernelNeeds::of(&image).and_then(|n| {
        n.check_cmdline_len(c.cmdline.len() as u64)?;
        Ok(n)
    });
    let report = inspect(&kernel);
    prop_assert_eq!(report.bootable, KernelNeeds::of(&image).is_ok());
    let linux = boot(c.ram, &linux_cfg);
    let stub_host = boot(c.ram, &stub_cfg);
    let wrapped = wrap_with(pvh_guests::STUB, &kernel, &wrap_options);
    let needs = match verdict {
        Err(e) => {
            let text = format!("kernel: {e}");
            if KernelNeeds::of(&image).is_err() {
                prop_assert_eq!(&report.problems[0], &text);
            }
            for (what, got) in [("linux", linux.err()), ("stub", stub_host.err())] {
                prop_assert_eq!(got.clone(), Some(LoadError::Linux(e)), "{}", what);
                prop_assert_eq!(got.unwrap().to_string(), text.clone());
            }
            match wrapped {
                Err(w @ WrapError::Kernel(_)) => prop_assert_eq!(w.to_string(), text.clone()),
                other => prop_assert!(false, "wrap: {:?}", other.map(|_| ())),
            }
            prop_assert_eq!(StubError::Kernel(e).to_string(), text);
            return Ok(());
        }
        Ok(n) => n,
    };

    // Each path's placement against the rules, over what it had placed.
    let ram = GuestRam::new(c.ram).unwrap();
    let usable = ram.usable();
    let mut pages: Vec<(&str, BootParams, u64)> = Vec::new();

    match &linux {
        Ok(b) => {
            let taken = b
                .guest
                .placements
                .iter()
                .filter(|p| {
                    matches!(
                        p.purpose,
                        Purpose::Gdt | Purpose::Idt | Purpose::Reserved(_) | Purpose::StartInfo
                    )
                })
                .map(|p| p.range())
                .collect();
            let mut o = Oracle {
                ram: &usable,
                taken,
            };
            let k = placement(b, Purpose::Kernel);
            prop_assert_eq!(Some(k.start), o.kernel(&needs), "linux kernel");
            prop_assert_eq!(b.guest.cpu.rip, k.start + 0x200);
            o.taken.push(k);
            if let Some(i) = initrd {
                let m = placement(b, Purpose::Module(0));
                let limit = (needs.initrd_addr_max + 1).min(1 << 32);
                prop_assert_eq!(Some(m.start), o.initrd(i.len() as u64, limit), "initrd");
                o.taken
                    .push(m.start..m.start + (i.len() as u64).div_ceil(PAGE) * PAGE);
            }
            let zp = b.guest.zero_page.unwrap();
            prop_assert_eq!(Some(zp), o.zero_page(), "linux zero page");
            let page = BootParams::from_page(b.read(zp, PAGE).try_into().unwrap());
            pages.push(("linux", page, b.guest.start_info));
        }
        Err(LoadError::Linux(LinuxBootError::NoRoom {
            part: Part::Kernel, ..
        })) => {
            let o = Oracle {
                ram: &usable,
                // Nothing it had placed reaches 1 MiB (start_info block,
                // GDT, IDT) or usable RAM (the hypervisor's range).
                taken: Vec::new(),
            };
            prop_assert_eq!(o.kernel(&needs), None, "linux: kernel said to fit");
        }
        Err(_) => {}
    }

    let mut stub_booted = vec![];
    if let Ok(b) = stub_host {
        // The bzImage is module 0: its setup sectors stay in use, its code
        // may move.
        let m0 = placement(&b, Purpose::Module(0));
        let setup = image.setup_size() as u64;
        let mut taken: Vec<_> = b
            .guest
            .placements
            .iter()
            .filter(|p| p.purpose != Purpose::Module(0))
            .map(|p| p.range())
            .collect();
        taken.push(m0.start..m0.start + setup);
        stub_booted.push(("stub", b, taken, (m0.start + setup, m0.end)));
    }
    if let Ok(w) = &wrapped {
        let cfg = BootConfig::new(Kernel::pvh_elf(&w.elf));
        if let Ok(b) = boot(c.ram, &cfg) {
            let l = w.layout;
            let code = (l.kernel_code, l.end);
            let taken: Vec<_> = b
                .guest
                .placements
                .iter()
                .filter(|p| p.start != l.kernel)
                .map(|p| p.range())
                .chain(std::iter::once(l.kernel..l.kernel_code))
                .collect();
            stub_booted.push(("wrapped", b, taken, code));
        }
    }
    for (what, b, taken, code) in stub_booted {
        let mut scratch = Box::new(Scratch::new());
        let decided = run_stub(&b, &mut scratch);
        let mut o = Oracle {
            ram: &usable,
            taken,
        };
        let runtime = o.kernel(&needs);
        let p = match decided {
            Ok(p) => p,
            Err(StubError::Kernel(LinuxBootError::NoRoom {
                part: Part::Kernel, ..
            })) => {
                prop_assert_eq!(runtime, None, "{}: kernel said to fit", what);
                continue;
            }
            Err(StubError::Kernel(LinuxBootError::InitrdTooHigh { .. })) if what == "wrapped" => {
                // Wrap checked the embedded initrd where it put it; a stub
                // that refuses it is a disagreement.
                prop_assert!(false, "{}: wrap accepted an initrd the stub refuses", what);
                unreachable!()
            }
            Err(e) => {
                prop_assert!(false, "{}: {}", what, e);
                unreachable!()
            }
        };
        let pl = p.placement;
        prop_assert_eq!(Some(pl.runtime), runtime, "{} kernel", what);
        // In place exactly when the code's own runtime start is that one.
        let in_place = runtime_start(&needs, code.0) == pl.runtime
            && !(code.0 > pl.runtime && code.0 < pl.runtime + pl.window);
        prop_assert_eq!(!pl.copy, in_place, "{}", what);
        prop_assert_eq!(pl.load, if in_place { code.0 } else { pl.runtime });
        o.taken.push(pl.runtime..pl.runtime + pl.window);
        o.taken.push(code.0..code.1);
        prop_assert_eq!(Some(pl.zero_page), o.zero_page(), "{} zero page", what);
        // The policy it applied: the caller's (stub path: the module's
        // option) or the payload's (wrapped).
        prop_assert_eq!(p.subarch, c.subarch, "{}", what);
        // Initrd and command line the kernel gets: the given ones.
        let page = p.params;
        let (ri, rs) = (page.ramdisk_image(), page.ramdisk_size());
        match initrd {
            Some(i) => prop_assert_eq!(b.read(ri, rs), i, "{} initrd", what),
            None => prop_assert_eq!(rs, 0),
        }
        let cmd = page.cmd_line_ptr();
        if !c.cmdline.is_empty() {
            let got = b.read(cmd, c.cmdline.len() as u64 + 1);
            let want = format!("{}\0", c.cmdline);
            prop_assert_eq!(got, want.as_bytes(), "{}", what);
        }
        pages.push((what, page, b.guest.start_info));
    }

    // The zero pages the three paths would hand the kernel: the same bytes
    // but for the addresses each chose.
    if let Some((_, reference, si)) = pages.first() {
        check_page(pages[0].0, reference, reference, c.subarch, *si)?;
        for (what, page, si) in &pages[1..] {
            check_page(what, page, reference, c.subarch, *si)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn stub_host_wrap_and_inspect_agree(c in case()) {
        agree(&c)?;
    }
}

/// The Debian-like case, pinned: all three paths boot, at 16 MiB, with the
/// same zero page; with `--subarch xen` each carries its own start_info.
#[test]
fn the_common_case_boots_the_same_three_ways() {
    for subarch in [SubarchPolicy::Pc, SubarchPolicy::Xen] {
        let c = Case {
            bz: SynthBz::default(),
            ram: 96 * MIB,
            initrd: Some(0x12_3456),
            extra: vec![0x100],
            cmdline: "console=ttyS0 quiet".into(),
            subarch,
        };
        agree(&c).unwrap();
    }
}
