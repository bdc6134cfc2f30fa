//! `pvh-probe`: a PVH guest that reports what its loader passed it.
//!
//! It prints one `key=value` line per fact on the runtime console (COM1, or
//! port 0xE9 under Xen): the CPU state at its entry point (`entry.*`, as
//! the runtime recorded it: control registers, EFER, EFLAGS, selectors and
//! the descriptors they name in the hypervisor's GDT, GDTR, IDTR), every
//! start_info field, the command line, each
//! module (address, size, command line, CRC32 of its contents), the memory
//! map (from the start_info, or from `XENMEM_memory_map` for a version-0
//! start_info under Xen), total RAM, the RSDP check, and the Linux zero
//! page `pvh_entry::zeropage::translate` makes from all of it, and the
//! verdict of every rule of `pvh_entry::conformance` on this boot
//! (`verdict.<rule>=PASS|FAIL|N/A MUST|SHOULD`, then the note with the
//! offending values for FAIL and N/A). Addresses
//! and sizes are hex with `0x`, counts decimal; strings are escaped so each
//! value stays on one line (see `pvh_entry::rt::console::Escaped`).
//!
//! Exit codes (QEMU isa-debug-exit; see `pvh_entry::rt::exit::ExitCode`):
//! - `Success` (QEMU status 1), after a last line `probe.done=1`, when
//!   every step could be carried out, even if a fact is "bad" (such as
//!   `rsdp.valid=0`: the host decides what is acceptable);
//! - `Failure` (status 3), after a `probe.error=` line, when the
//!   start_info cannot be read or translated at all;
//! - `Panic` (5) and `Fault` (7), from the runtime. The command-line words
//!   `probe.panic` and `probe.fault` cause them on purpose (a panic, a read
//!   of an unmapped address), so tests can check those paths.
//!
//! With the command-line word `probe.inflate`, the probe also decompresses
//! every gzip module in place (see `inflate.rs`) and reports
//! `inflate.N.*`: the memory it used, whether the output matches the gzip
//! trailer, and whether every other module is still intact.
#![no_std]
#![no_main]

mod inflate;

use pvh_entry::bootparams::{BootParams, E820Entry, E820Type};
use pvh_entry::conformance::cpu::{BSS_ALL_ZERO, EntryState, SegReg};
use pvh_entry::conformance::{Outcome, Subject, Tally, check};
use pvh_entry::rt::console::Escaped;
use pvh_entry::rt::exit::{ExitCode, exit};
use pvh_entry::rt::{BootInfo, acpi, entry_state, paging, rsdp};
use pvh_entry::zeropage::{TranslateOptions, e820_scratch_len, translate};
use pvh_entry::{MemmapEntry, MemmapType, PhysRead, StartInfoView, rt_println as out};

pvh_entry::pvh_main!(main);

/// Most memory-map entries the probe handles (E820MAX).
const MAX_MAP: usize = 128;

fn main(boot: BootInfo) -> ! {
    // An empty line first: firmware may have left the cursor mid-line
    // (SeaBIOS's "Booting from ROM..").
    out!();
    out!("probe.start=1");
    out!(
        "platform={}",
        if boot.xen.is_some() { "xen" } else { "native" }
    );
    report_entry(entry_state());
    // SAFETY: the probe only reads through this view.
    let mem = unsafe { pvh_entry::rt::identity_memory() };
    out!("start_info.addr={:#x}", boot.start_info);
    let view = match StartInfoView::read(&mem, boot.start_info) {
        Ok(v) => v,
        Err(e) => fail(format_args!("start_info: {e}")),
    };
    let h = *view.header();
    out!("magic={:#x}", { h.magic });
    out!("version={}", { h.version });
    out!("flags={:#x}", { h.flags });
    out!("nr_modules={}", { h.nr_modules });
    out!("modlist_paddr={:#x}", { h.modlist_paddr });
    out!("cmdline_paddr={:#x}", { h.cmdline_paddr });
    out!("rsdp_paddr={:#x}", { h.rsdp_paddr });
    out!("memmap_paddr={:#x}", { h.memmap_paddr });
    out!("memmap_entries={}", { h.memmap_entries });

    let mut buf = [0u8; 4096];
    let mut inflate = false;
    if let Some(cmdline) = view.read_cmdline(&mut buf) {
        out!("cmdline={}", Escaped(cmdline));
        // Self-tests of the runtime's failure paths, on request.
        for word in cmdline.split(|&b| b == b' ') {
            match word {
                b"probe.panic" => panic!("requested by the command line"),
                b"probe.fault" => fault(),
                b"probe.inflate" => inflate = true,
                _ => {}
            }
        }
    }
    for m in view.modules() {
        let i = m.index;
        out!("module.{i}.paddr={:#x}", { m.entry.paddr });
        out!("module.{i}.size={:#x}", { m.entry.size });
        if let Some(cmdline) = view.read_module_cmdline(&m, &mut buf) {
            out!("module.{i}.cmdline={}", Escaped(cmdline));
        }
        match crc32(&mem, m.entry.paddr, m.entry.size, &mut buf) {
            Some(crc) => out!("module.{i}.crc32={crc:#010x}"),
            None => out!("module.{i}.crc32=unreadable"),
        }
    }

    // The memory map: the start_info's, else Xen's by hypercall.
    let mut map = [MemmapEntry::new(0, 0, MemmapType::RAM); MAX_MAP];
    let mut count = 0;
    let mut supplied = false;
    if view.memmap_len() > 0 {
        out!("memmap.source=start_info");
        for e in view.memmap().take(MAX_MAP) {
            map[count] = e;
            count += 1;
        }
    } else if let Some(xen) = boot.xen {
        out!("memmap.source=hypercall");
        let mut e820 = [E820Entry::new(0, 0, E820Type::RAM); MAX_MAP];
        match xen.memory_map(&mut e820) {
            Ok(n) => {
                for (slot, e) in map.iter_mut().zip(&e820[..n]) {
                    *slot = MemmapEntry::new(e.addr, e.size, MemmapType({ e.type_ }.0));
                }
                count = n;
                supplied = true;
            }
            Err(e) => out!("memmap.error={e}"),
        }
    } else {
        out!("memmap.source=none");
    }
    let map = &map[..count];
    out!("memmap.count={count}");
    let mut ram = 0u64;
    let mut ram_top = 0u64;
    for (i, e) in map.iter().enumerate() {
        out!(
            "memmap.{i}={:#x},{:#x},{}",
            { e.addr },
            { e.size },
            { e.type_ }.0
        );
        if { e.type_ } == MemmapType::RAM {
            ram = ram.saturating_add(e.size);
            ram_top = ram_top.max(e.end().unwrap_or(u64::MAX));
        }
    }
    out!("ram_bytes={ram:#x}");
    out!("ram_top={ram_top:#x}");
    match paging::extend_identity_map(ram_top) {
        Ok(top) => {
            out!("identity_map.top={top:#x}");
            // Prove the extension: read the last word of RAM through the
            // grown map (a missing mapping ends in a page fault, reported
            // by the runtime with ExitCode::Fault).
            // SAFETY: read only.
            let high = unsafe { pvh_entry::rt::identity_memory() };
            let mut word = [0u8; 8];
            let readable = ram_top >= 8 && high.read(ram_top - 8, &mut word).is_ok();
            out!("ram_top.read={}", if readable { "ok" } else { "failed" });
        }
        Err(e) => out!("identity_map.error={e}"),
    }
    if inflate {
        inflate_modules(&view, boot.start_info, map);
    }

    match rsdp::locate(&mem, view.rsdp_paddr()) {
        Some((addr, found_by)) => {
            out!("rsdp.found_by={}", found_by.as_str());
            report_rsdp(&mem, addr);
        }
        None => {
            out!("rsdp.found_by=none");
            out!("rsdp.valid=0");
        }
    }

    let options = TranslateOptions::default().memmap(supplied.then_some(map));
    let mut scratch = [E820Entry::new(0, 0, E820Type::RAM); e820_scratch_len(MAX_MAP)];
    let mut bp = BootParams::zeroed();
    match translate(&view, &options, &mut scratch, &mut bp) {
        Ok(t) => {
            out!("zeropage.e820_total={}", t.e820_total);
            out!("zeropage.e820_entries={}", bp.e820_entries);
            let mut zp_ram = 0u64;
            for (i, e) in bp.e820().iter().enumerate() {
                out!(
                    "zeropage.e820.{i}={:#x},{:#x},{}",
                    { e.addr },
                    { e.size },
                    { e.type_ }.0
                );
                if { e.type_ } == E820Type::RAM {
                    zp_ram = zp_ram.saturating_add(e.size);
                }
            }
            out!("zeropage.ram_bytes={zp_ram:#x}");
            out!("zeropage.cmd_line_ptr={:#x}", bp.cmd_line_ptr());
            out!("zeropage.ramdisk_image={:#x}", bp.ramdisk_image());
            out!("zeropage.ramdisk_size={:#x}", bp.ramdisk_size());
            out!(
                "zeropage.hardware_subarch={}",
                { bp.hdr.hardware_subarch }.0
            );
            out!("zeropage.acpi_rsdp_addr={:#x}", { bp.acpi_rsdp_addr });
        }
        Err(e) => fail(format_args!("zeropage: {e}")),
    }

    // The verdict, one line per rule (pvh_entry::conformance).
    let subject = Subject {
        mem: &mem,
        start_info: boot.start_info,
        entry: Some(entry_state()),
        image: Some(pvh_entry::rt::image()),
        fallback_map: supplied.then_some(map),
        xen: boot.xen.is_some(),
    };
    let mut tally = Tally::default();
    check(&subject, &mut |f| {
        tally.add(f);
        // The note only where it explains something: the entry.* lines
        // already carry the raw values, and every byte costs port I/O.
        if f.outcome == Outcome::Pass {
            out!("verdict.{}=PASS {}", f.rule.id, f.rule.level.as_str());
        } else {
            out!("verdict.{}={f}", f.rule.id);
        }
    });
    out!("verdict.must_failed={}", tally.must_failed);
    out!("verdict.should_failed={}", tally.should_failed);
    out!("probe.done=1");
    exit(ExitCode::Success)
}

/// Most modules whose CRCs the in-place check compares.
const MAX_CHECKED: usize = 64;

/// Decompresses every gzip module in place (`inflate.N.*` lines), then
/// checks that every other module still has the CRC it had before.
fn inflate_modules<M: PhysRead>(view: &StartInfoView<'_, M>, start_info: u64, map: &[MemmapEntry]) {
    unsafe extern "C" {
        static __pvh_image_start: u8;
        static __pvh_image_end: u8;
    }
    // SAFETY: the probe's RAM is identity-mapped up to ram_top (extended
    // above); no Rust reference aliases the modules it rewrites.
    let mut mem = unsafe { pvh_entry::rt::identity_memory() };
    let mut buf = [0u8; 4096];
    let mut ram = [(0u64, 0u64); MAX_MAP];
    let mut n_ram = 0;
    for e in map.iter().filter(|e| { e.type_ } == MemmapType::RAM) {
        ram[n_ram] = (e.addr, e.end().unwrap_or(u64::MAX));
        n_ram += 1;
    }
    // What must not be touched: every module, the start_info objects
    // (strings up to a page each), this image.
    let h = *view.header();
    let modlist = u64::from(h.nr_modules) * 32;
    let memmap = u64::from(h.memmap_entries) * 24;
    let mut keep = [(0u64, 0u64); MAX_CHECKED + 6];
    let mut n_keep = 0;
    let mut add = |r: (u64, u64), keep: &mut [(u64, u64)]| {
        if n_keep < keep.len() && r.1 > r.0 {
            keep[n_keep] = r;
            n_keep += 1;
        }
    };
    add((start_info, start_info + 64), &mut keep);
    add((h.modlist_paddr, h.modlist_paddr + modlist), &mut keep);
    add((h.memmap_paddr, h.memmap_paddr + memmap), &mut keep);
    add((h.cmdline_paddr, h.cmdline_paddr + 4096), &mut keep);
    let image = (
        &raw const __pvh_image_start as u64,
        &raw const __pvh_image_end as u64,
    );
    add(image, &mut keep);
    let mut crcs = [None; MAX_CHECKED];
    for m in view.modules().take(MAX_CHECKED) {
        let (paddr, size) = ({ m.entry.paddr }, { m.entry.size });
        add((paddr, paddr + size), &mut keep);
        if m.entry.cmdline_paddr != 0 {
            add(
                (m.entry.cmdline_paddr, m.entry.cmdline_paddr + 4096),
                &mut keep,
            );
        }
        crcs[m.index as usize] = crc32(&mem, paddr, size, &mut buf);
    }
    let keep = &keep[..n_keep];
    let mut rewritten = [false; MAX_CHECKED];
    for m in view.modules().take(MAX_CHECKED) {
        let (i, paddr, size) = (m.index, { m.entry.paddr }, { m.entry.size });
        let mut magic = [0u8; 2];
        if mem.read(paddr, &mut magic).is_err() || magic != [0x1f, 0x8b] {
            continue;
        }
        rewritten[i as usize] = true;
        let others: &[(u64, u64)] = keep;
        let others = others
            .iter()
            .copied()
            .filter(|&r| r != (paddr, paddr + size));
        let mut others_buf = [(0u64, 0u64); MAX_CHECKED + 6];
        let mut n = 0;
        for r in others {
            others_buf[n] = r;
            n += 1;
        }
        match inflate::in_place(&mut mem, paddr, size, &ram[..n_ram], &others_buf[..n]) {
            Ok(r) => {
                out!("inflate.{i}.region={:#x},{:#x}", r.start, r.end);
                out!("inflate.{i}.size={:#x}", r.out_len);
                out!("inflate.{i}.crc32={:#010x}", r.crc32);
                out!(
                    "inflate.{i}.trailer={}",
                    if r.trailer_ok { "ok" } else { "mismatch" }
                );
            }
            Err(e) => out!("inflate.{i}.error={e}"),
        }
    }
    // Every module that was not decompressed must be as it was.
    let mut intact = true;
    for m in view.modules().take(MAX_CHECKED) {
        let i = m.index as usize;
        if !rewritten[i] && crc32(&mem, m.entry.paddr, m.entry.size, &mut buf) != crcs[i] {
            out!("inflate.damaged={i}");
            intact = false;
        }
    }
    out!("inflate.others_intact={}", u8::from(intact));
}

fn report_rsdp<M: PhysRead>(mem: &M, addr: u64) {
    out!("rsdp.addr={addr:#x}");
    match rsdp::check(mem, addr) {
        Ok(r) => {
            out!("rsdp.revision={}", r.revision);
            out!("rsdp.valid=1");
            let kind = if r.revision >= 2 && { r.xsdt_address } != 0 {
                "xsdt"
            } else {
                "rsdt"
            };
            if let Some(root) = acpi::root(mem, &r) {
                report_root(mem, root, kind);
            }
        }
        Err(e) => {
            out!("rsdp.error={e}");
            out!("rsdp.valid=0");
        }
    }
}

/// Every entry of the root table (`acpi.xsdt.N=SIG,addr,valid`, or
/// `acpi.rsdt.N=...` for an ACPI 1.0 RSDT) and, for a MADT, the processors
/// and IOAPICs it lists.
fn report_root<M: PhysRead>(mem: &M, root: Result<acpi::Xsdt, acpi::TableError>, kind: &str) {
    let xsdt = match root {
        Ok(x) => x,
        Err(e) => {
            out!("acpi.{kind}.error={e}");
            return;
        }
    };
    out!("acpi.{kind}.count={}", xsdt.len());
    for i in 0..xsdt.len() {
        let Some(table) = xsdt.entry(mem, i) else {
            continue;
        };
        match acpi::table(mem, table) {
            Ok(h) => {
                let sig = h.signature;
                let name = core::str::from_utf8(&sig).unwrap_or("????");
                out!("acpi.{kind}.{i}={name},{table:#x},1");
                if &sig == b"APIC" {
                    match acpi::madt(mem, table) {
                        Ok(m) => {
                            out!("acpi.madt.cpus={}", m.enabled_cpus);
                            out!("acpi.madt.disabled_cpus={}", m.disabled_cpus);
                            out!("acpi.madt.ioapics={}", m.ioapics);
                        }
                        Err(e) => out!("acpi.madt.error={e}"),
                    }
                }
            }
            Err(e) => out!("acpi.{kind}.{i}=????,{table:#x},0 ({e})"),
        }
    }
}

/// The CPU state at entry, as the runtime recorded it.
fn report_entry(e: &EntryState) {
    out!("entry.captured={}", u8::from(e.captured()));
    out!("entry.eflags={:#x}", e.eflags);
    out!("entry.cr0={:#x}", e.cr0);
    out!("entry.cr3={:#x}", e.cr3);
    out!("entry.cr4={:#x}", e.cr4);
    out!("entry.efer={:#x}", e.efer);
    out!("entry.ebx={:#x}", e.ebx);
    out!("entry.esp={:#x}", e.esp);
    out!("entry.eip={:#x},{:#x}", e.eip, e.eip_linked);
    out!(
        "entry.selectors=cs={:#x},ds={:#x},es={:#x},ss={:#x},fs={:#x},gs={:#x},tr={:#x},ldtr={:#x}",
        e.cs,
        e.ds,
        e.es,
        e.ss,
        e.fs,
        e.gs,
        e.tr,
        e.ldtr
    );
    let (gdtr, idtr) = (e.gdtr(), e.idtr());
    out!("entry.gdtr={:#x},{:#x}", gdtr.base, gdtr.limit);
    out!("entry.idtr={:#x},{:#x}", idtr.base, idtr.limit);
    for reg in [SegReg::Cs, SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Tr] {
        match e.segment(reg) {
            Ok(d) => out!("entry.{}.desc={d}", reg.name()),
            Err(why) => out!("entry.{}.desc=none ({why})", reg.name()),
        }
    }
    match e.bss_first_nonzero {
        BSS_ALL_ZERO => out!("entry.bss=zero"),
        at => out!("entry.bss={at:#x}"),
    }
}

/// CRC32 (IEEE) of `size` bytes at `addr`, read through `mem` in chunks.
fn crc32<M: PhysRead>(mem: &M, addr: u64, size: u64, buf: &mut [u8]) -> Option<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        mem.read(addr.checked_add(done)?, &mut buf[..n]).ok()?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    Some(h.finalize())
}

/// Reads an address the identity map does not cover, to exercise the
/// runtime's page-fault report (vector 14, CR2 = the address).
fn fault() -> ! {
    const UNMAPPED: u64 = 1 << 46;
    // SAFETY: deliberately faulting: the read never completes, the
    // runtime's #PF handler reports it and exits.
    let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    fail(format_args!("read {v:#x} from unmapped {UNMAPPED:#x}"))
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    out!("probe.error={why}");
    exit(ExitCode::Failure)
}
