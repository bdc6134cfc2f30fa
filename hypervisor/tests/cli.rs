//! The `pvh` binary as a child process: hand-assembled guests (wrapped in a
//! minimal PVH ELF and loaded by the real loader) that behave and that
//! misbehave. Each run has a watchdog: a test never hangs, whatever the VMM
//! does.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Asm, CODE_ADDR, kvm_available, pvh_elf};
use pvh_hypervisor::status;

/// Generous bound for any single `pvh` run; only hit if the VMM is broken.
const WATCHDOG: Duration = Duration::from_secs(120);

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn pvh(args: &[&str]) -> Run {
    pvh_with_input(args, None)
}

/// Runs `pvh` with `input` on its stdin (then closed), or /dev/null;
/// `common::run_pvh_with_stdin` with its output as text.
fn pvh_with_input(args: &[&str], input: Option<&'static [u8]>) -> Run {
    let r = common::run_pvh_with_stdin(args, input, WATCHDOG);
    Run {
        status: r.status,
        stdout: r.out(),
        stderr: r.stderr,
    }
}

/// Writes `code` as a PVH ELF into a fresh file under the target dir.
fn guest_file(name: &str, code: &Asm) -> PathBuf {
    code_file(name, code.bytes())
}

/// [`guest_file`] for code given as bytes.
fn code_file(name: &str, code: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvh-hypervisor-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.elf"));
    std::fs::write(&path, pvh_elf(code)).unwrap();
    path
}

fn boot(name: &str, code: &Asm, extra: &[&str]) -> Run {
    let path = guest_file(name, code);
    let mut args = vec!["boot", "--kernel", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    pvh(&args)
}

#[test]
fn uart_output_and_exit_port_code() {
    if !kvm_available("uart_output_and_exit_port_code") {
        return;
    }
    let r = boot(
        "hello",
        &Asm::new().print("hello from the guest\n").exit(42),
        &[],
    );
    assert_eq!(r.status, 42, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "hello from the guest\n");
    assert!(r.stderr.contains("exit port with code 42"), "{}", r.stderr);
}

#[test]
fn exit_port_zero_is_success_and_large_values_are_65() {
    if !kvm_available("exit_port_zero_is_success_and_large_values_are_65") {
        return;
    }
    assert_eq!(boot("exit0", &Asm::new().exit(0), &[]).status, 0);
    let r = boot("exit200", &Asm::new().exit(200), &[]);
    assert_eq!(r.status, i32::from(status::GUEST_CODE_OUT_OF_RANGE));
    assert!(r.stderr.contains("0xc8"), "{}", r.stderr);
}

#[test]
fn i8042_reset_ends_with_status_0() {
    if !kvm_available("i8042_reset_ends_with_status_0") {
        return;
    }
    let code = Asm::new()
        .print("bye")
        .mov_dx(0x64)
        .mov_al(0xfe)
        .out_dx_al()
        .exit(5);
    let r = boot("reset", &code, &[]);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "bye");
    assert!(r.stderr.contains("guest reset"), "{}", r.stderr);
}

#[test]
fn serial_to_file() {
    if !kvm_available("serial_to_file") {
        return;
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvh-serial-out.txt");
    let _ = std::fs::remove_file(&out);
    let r = boot(
        "serialfile",
        &Asm::new().print("to a file").exit(0),
        &["--serial", out.to_str().unwrap()],
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "to a file");
}

#[test]
fn triple_fault_prints_registers() {
    if !kvm_available("triple_fault_prints_registers") {
        return;
    }
    // lidt with limit 0 (a 6-byte zero descriptor placed after the code),
    // then ud2: #UD beyond the IDT limit -> #GP -> #DF -> triple fault.
    let idtr_at = CODE_ADDR + 7 + 2 + 2; // lidt (7) + ud2 (2) + jmp $ (2)
    let mut code = Asm::new().lidt_abs(idtr_at as u32).ud2();
    let here = code.here();
    code = code.jmp_to(here).raw(&[0; 6]);
    let r = boot("triplefault", &code, &[]);
    assert_eq!(r.status, i32::from(status::TRIPLE_FAULT), "{}", r.stderr);
    assert!(r.stderr.contains("triple fault"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("rip={:#018x}", CODE_ADDR + 7)),
        "registers at the int3: {}",
        r.stderr
    );
    assert!(r.stderr.contains("idt=0x0/0x0"), "{}", r.stderr);
}

#[test]
fn spinning_on_an_unanswered_port_ends_by_timeout() {
    if !kvm_available("spinning_on_an_unanswered_port_ends_by_timeout") {
        return;
    }
    let mut code = Asm::new().mov_dx(0x1234);
    let top = code.here();
    code = code.in_al_dx().jmp_to(top);
    let r = boot("spinport", &code, &["--timeout", "1", "--verbose"]);
    assert_eq!(r.status, i32::from(status::TIMEOUT), "{}", r.stderr);
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
    assert!(
        r.stderr.contains("unanswered port 0x1234: "),
        "verbose counts: {}",
        r.stderr
    );
}

#[test]
fn garbage_on_every_port_is_survived() {
    if !kvm_available("garbage_on_every_port_is_survived") {
        return;
    }
    // for dx in 0..=0xffff, skipping the exit port 0xf4..=0xf7:
    //   out dx, al (0xa5); then the same with out dx, ax.
    let mut code = Asm::new();
    for wide in [false, true] {
        code = code.xor_edx().mov_eax(0xa5a5_a5a5);
        let top = code.here();
        // cmp dx,0xf4 / jb write / cmp dx,0xf7 / jbe skip
        code = code.cmp_dx(0xf4);
        let jb_at = code.here();
        code = code.jb_to(jb_at); // patched below
        code = code.cmp_dx(0xf7);
        let jbe_at = code.here();
        code = code.jbe_to(jbe_at); // patched below
        let write = code.here();
        code = if wide {
            code.out_dx_ax()
        } else {
            code.out_dx_al()
        };
        let skip = code.here();
        code = code.inc_dx().jne_to(top);
        code.0[jb_at + 1] = (write - (jb_at + 2)) as u8;
        code.0[jbe_at + 1] = (skip - (jbe_at + 2)) as u8;
    }
    // The garbage left COM1's LCR with DLAB set: restore 8N1 before printing.
    let code = code
        .mov_dx(0x3fb)
        .mov_al(0x03)
        .out_dx_al()
        .print("survived\n")
        .exit(7);
    let r = boot("garbage", &code, &["--timeout", "100", "--verbose"]);
    assert_eq!(r.status, 7, "stderr: {}", r.stderr);
    assert!(r.stdout.ends_with("survived\n"), "{:?}", r.stdout);
    // Far more than a thousand distinct ports nobody answers were counted.
    let unanswered = r.stderr.matches("unanswered port").count();
    assert!(unanswered > 60_000, "{unanswered} unanswered ports listed");
}

#[test]
fn guest_that_never_exits_ends_by_timeout() {
    if !kvm_available("guest_that_never_exits_ends_by_timeout") {
        return;
    }
    // Halted with interrupts off: KVM keeps the vCPU inside KVM_RUN.
    let r = boot("clihlt", &Asm::new().cli().hlt(), &["--timeout", "0.5"]);
    assert_eq!(r.status, i32::from(status::TIMEOUT), "{}", r.stderr);
    // A tight loop: never leaves the guest at all.
    let mut spin = Asm::new();
    let top = spin.here();
    spin = spin.jmp_to(top);
    let r = boot("spin", &spin, &["--timeout", "0.5"]);
    assert_eq!(r.status, i32::from(status::TIMEOUT), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("rip={CODE_ADDR:#018x}")),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_kvm_device_is_a_clear_error() {
    // Needs no KVM: the device path is wrong on purpose.
    let r = boot(
        "nokvm",
        &Asm::new().exit(0),
        &["--kvm-device", "/nonexistent/kvm"],
    );
    assert_eq!(r.status, i32::from(status::NO_KVM), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot open /nonexistent/kvm"),
        "{}",
        r.stderr
    );
    // A file that is not a KVM device: the API version check fails.
    let r = boot(
        "notkvm",
        &Asm::new().exit(0),
        &["--kvm-device", "/dev/null"],
    );
    assert_eq!(r.status, i32::from(status::NO_KVM), "{}", r.stderr);
}

#[test]
fn usage_errors_are_64() {
    let r = pvh(&["boot", "--memory", "12X"]);
    assert_eq!(r.status, i32::from(status::USAGE));
    assert!(r.stderr.contains("12X"), "{}", r.stderr);
    let r = pvh(&["frobnicate"]);
    assert_eq!(r.status, i32::from(status::USAGE));
    let r = pvh(&["--help"]);
    assert_eq!(r.status, 0);
    assert!(r.stdout.contains("boot"), "{}", r.stdout);
}

#[test]
fn unreadable_or_bad_kernel_is_66() {
    let r = pvh(&["boot", "--kernel", "/nonexistent/vmlinux"]);
    assert_eq!(r.status, i32::from(status::BAD_INPUT), "{}", r.stderr);
    assert!(r.stderr.contains("/nonexistent/vmlinux"), "{}", r.stderr);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let junk = dir.join("pvh-junk-kernel");
    std::fs::write(&junk, b"this is not a kernel").unwrap();
    let r = pvh(&["boot", "--kernel", junk.to_str().unwrap()]);
    assert_eq!(r.status, i32::from(status::BAD_INPUT), "{}", r.stderr);
    assert!(
        r.stderr.contains("loading the guest failed"),
        "{}",
        r.stderr
    );
}

#[test]
fn plan_prints_without_running() {
    let path = guest_file("plan", &Asm::new().exit(3));
    let r = pvh(&[
        "boot",
        "--kernel",
        path.to_str().unwrap(),
        "--memory",
        "64M",
        "--plan",
        "--kvm-device",
        "/nonexistent/kvm",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("entry {CODE_ADDR:#x}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("start_info"), "{}", r.stdout);
}

/// The Debian bzImage from `scripts/fetch-artifacts.sh`, if fetched.
fn artifact(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PVH_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pvh-artifacts"),
        PathBuf::from,
    );
    let p = dir.join(name);
    p.exists().then_some(p)
}

#[test]
fn bzimage_boots_through_the_builtin_stub() {
    let Some(bz) = artifact("bzImage") else {
        eprintln!(
            "bzimage_boots_through_the_builtin_stub: skipped: no bzImage (run scripts/fetch-artifacts.sh)"
        );
        return;
    };
    let bz = bz.to_str().unwrap();
    // The plan: the stub is the PVH kernel at 1 MiB, the bzImage module 0.
    let r = pvh(&["boot", "--kernel", bz, "--plan"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("entry 0x100000 (Protected32)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("module 0"), "{}", r.stdout);
    if !kvm_available("bzimage_boots_through_the_builtin_stub") {
        return;
    }
    // Running it: the stub reports on COM1 before it enters the kernel.
    // (Linux itself only gets far on a real KVM; here it is cut short.)
    let r = pvh(&[
        "boot",
        "--kernel",
        bz,
        "--cmdline",
        "console=ttyS0 reboot=k",
        "--timeout",
        "2",
    ]);
    assert!(
        [0, i32::from(status::TIMEOUT)].contains(&r.status),
        "status {}: {}",
        r.status,
        r.stderr
    );
    assert!(r.stdout.contains("stub"), "{}", r.stdout);
}

#[test]
fn kvm_internal_error_prints_reason_and_registers() {
    if !kvm_available("kvm_internal_error_prints_reason_and_registers") {
        return;
    }
    // Jump into the MMIO hole: nothing to fetch instructions from.
    let code = Asm::new().mov_eax(0xd000_0000).raw(&[0xff, 0xe0]);
    let r = boot("mmiojump", &code, &[]);
    assert_eq!(r.status, i32::from(status::KVM_INTERNAL), "{}", r.stderr);
    assert!(r.stderr.contains("emulation failure"), "{}", r.stderr);
    assert!(r.stderr.contains("rip=0x00000000d0000000"), "{}", r.stderr);
}

#[test]
fn mmio_outside_ram_reads_all_ones_and_drops_writes() {
    if !kvm_available("mmio_outside_ram_reads_all_ones_and_drops_writes") {
        return;
    }
    // mov [0xd0000000], eax; mov eax, [0xd0000004]; and al, 0x3f;
    // mov dx, 0xf4; out dx, al  -> status 63 only if the read was all ones.
    let code = Asm::new()
        .mov_eax(0x1234_5678)
        .raw(&[0xa3])
        .raw(&0xd000_0000u32.to_le_bytes())
        .raw(&[0xa1])
        .raw(&0xd000_0004u32.to_le_bytes())
        .raw(&[0x24, 0x3f])
        .mov_dx(0xf4)
        .out_dx_al();
    let r = boot("mmio", &code, &["--verbose"]);
    assert_eq!(r.status, 63, "{}", r.stderr);
    assert!(
        r.stderr.contains("1 MMIO reads, 1 MMIO writes"),
        "{}",
        r.stderr
    );
}

#[test]
fn stdin_reaches_the_guest_through_com1() {
    if !kvm_available("stdin_reaches_the_guest_through_com1") {
        return;
    }
    // Echo COM1 input until a newline, polling LSR.DR; then exit 0.
    let mut code = Asm::new();
    let top = code.here();
    code = code.mov_dx(0x3fd);
    let poll = code.here();
    code = code.in_al_dx().raw(&[0xa8, 0x01]); // test al, 1
    let jz_at = code.here();
    code = code.raw(&[0x74, (poll as isize - (jz_at as isize + 2)) as i8 as u8]); // jz poll
    code = code
        .mov_dx(0x3f8)
        .in_al_dx()
        .out_dx_al()
        .raw(&[0x3c, b'\n']) // cmp al, '\n'
        .jne_to(top)
        .exit(0);
    let path = guest_file("echo", &code);
    // Longer than the 64-byte receive FIFO: the feeder must wait for room.
    let line: &'static [u8] =
        b"typed on the host's stdin, longer than one sixteen-byte-or-sixty-four-byte FIFO\n";
    let r = pvh_with_input(
        &[
            "boot",
            "--kernel",
            path.to_str().unwrap(),
            "--stdin",
            "--timeout",
            "60",
        ],
        Some(line),
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stdout.as_bytes(), line);
}

/// The one error for a kernel the Linux boot policy refuses, as every
/// caller words it. `tests/tests/stub_qemu.rs` checks the stub's console
/// line for the same input against the same text.
const OLD_PROTOCOL: &str =
    "kernel: not a usable bzImage: boot protocol 0x020b is older than the required 0x020c";

#[test]
fn a_refused_kernel_is_the_same_error_from_boot_inspect_and_wrap() {
    let Some(bz) = artifact("bzImage") else {
        eprintln!("skipped: no bzImage (run scripts/fetch-artifacts.sh)");
        return;
    };
    // The Debian bzImage with its protocol patched to 2.11 (no 64-bit
    // entry), as in the stub's QEMU test.
    let mut bytes = std::fs::read(&bz).unwrap();
    bytes[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
    let dir = std::env::temp_dir().join(format!("pvh-policy-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.bzImage");
    std::fs::write(&old, &bytes).unwrap();
    let old = old.to_str().unwrap();
    let out = dir.join("w.elf");
    let out = out.to_str().unwrap();
    let runs = [
        ("boot (stub)", pvh(&["boot", "--kernel", old, "--plan"])),
        (
            "boot (linux)",
            pvh(&[
                "boot",
                "--kernel",
                old,
                "--boot-protocol",
                "linux",
                "--plan",
            ]),
        ),
        ("inspect", pvh(&["inspect", old])),
        ("wrap", pvh(&["wrap", old, "-o", out])),
    ];
    for (what, r) in &runs {
        assert_eq!(
            r.status,
            i32::from(status::BAD_INPUT),
            "{what}: {}",
            r.stderr
        );
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(text.contains(OLD_PROTOCOL), "{what}: {text}");
    }
    assert!(
        runs[2].1.stdout.contains("bootable: no"),
        "{}",
        runs[2].1.stdout
    );
    assert!(!Path::new(out).exists(), "wrap wrote nothing");

    // A command line longer than the kernel's cmdline_size: the same words
    // from boot (either path) and wrap.
    let bz = bz.to_str().unwrap();
    let max = u32::from_le_bytes(bytes[0x238..0x23c].try_into().unwrap());
    let long = "x".repeat(max as usize + 1);
    let want = format!(
        "kernel: command line of {} bytes exceeds the kernel's cmdline_size {max}",
        max + 1
    );
    for args in [
        vec!["boot", "--kernel", bz, "--cmdline", &long, "--plan"],
        vec![
            "boot",
            "--kernel",
            bz,
            "--boot-protocol",
            "linux",
            "--cmdline",
            &long,
            "--plan",
        ],
        vec!["wrap", bz, "--cmdline", &long, "-o", out],
    ] {
        let r = pvh(&args);
        assert_eq!(
            r.status,
            i32::from(status::BAD_INPUT),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(&want), "{args:?}: {}", r.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `look` finds in /proc/PID of `pvh boot --kernel <ELF of code>`
/// `extra`, while the guest runs: `code` prints `ready` and then spins
/// (bytes after it are loaded too). The process is killed afterwards.
fn while_spinning<T>(name: &str, code: &[u8], extra: &[&str], look: impl FnOnce(u32) -> T) -> T {
    let path = code_file(name, code);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pvh"));
    cmd.args(["boot", "--kernel", path.to_str().unwrap()])
        .args(extra);
    let (line, found) = common::first_line_then_kill(&mut cmd, look);
    let _ = std::fs::remove_file(&path);
    assert_eq!(line, "ready\n", "the guest did not start");
    found
}

/// A guest that prints `ready` and spins.
fn ready_and_spin() -> Vec<u8> {
    let code = Asm::new().print("ready\n");
    let top = code.here();
    code.jmp_to(top).bytes().to_vec()
}

/// How many vCPU threads (named `vcpuN`) `pvh` has while it runs a guest
/// that printed `ready` and then spins, started with `extra` arguments.
/// (Not all threads: KVM adds a task of its own to the process on recent
/// kernels.)
fn vcpu_threads_while_spinning(name: &str, extra: &[&str]) -> usize {
    while_spinning(name, &ready_and_spin(), extra, |pid| {
        std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("vcpu"))
                })
                .count()
        })
    })
    .expect("reading the process's threads")
}

#[test]
fn one_vcpu_without_a_timeout_runs_on_the_main_thread() {
    if !kvm_available("one_vcpu_without_a_timeout_runs_on_the_main_thread") {
        return;
    }
    // Nothing but the vCPU can end this run: no thread waits for it.
    assert_eq!(vcpu_threads_while_spinning("spin-main", &[]), 0);
    // A timeout needs a thread to wait it out and stop the vCPU, so the
    // vCPU has its own.
    assert_eq!(
        vcpu_threads_while_spinning("spin-timeout", &["--timeout", "60"]),
        1
    );
}

#[test]
fn the_kernel_file_is_not_kept_mapped_while_the_guest_runs() {
    if !kvm_available("the_kernel_file_is_not_kept_mapped_while_the_guest_runs") {
        return;
    }
    // 48 MiB loaded from the kernel file, which pvh maps to load it: its
    // page-cache pages would stay in pvh's resident set for the whole run
    // (as `RssFile`) if the mapping did.
    let mut kernel = ready_and_spin();
    kernel.resize(kernel.len() + (48 << 20), 0x5a);
    let file_kib = while_spinning("kernel-48m", &kernel, &[], |pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    // pvh's own binary and libraries are a few MiB of it.
    assert!(
        file_kib < 24 << 10,
        "{file_kib} KiB of file pages resident while the guest runs"
    );
}

/// A guest starts with MTRRs enabled and write-back as the default memory
/// type, as firmware leaves them and Firecracker and Cloud Hypervisor set
/// them (hypervisor/src/msr.rs); KVM's reset value 0 would mean "MTRRs
/// disabled" and Linux would run without PAT.
#[test]
fn the_guest_starts_with_mtrrs_enabled_and_write_back_default() {
    if !kvm_available("the_guest_starts_with_mtrrs_enabled_and_write_back_default") {
        return;
    }
    // rdmsr IA32_MTRR_DEF_TYPE; print its low byte (the type) and the next
    // one (E is bit 3 of it) as digits.
    let code = Asm::new()
        .mov_ecx(0x2ff)
        .raw(&[0x0f, 0x32]) // rdmsr
        .mov_dx(0x3f8)
        .raw(&[0x04, b'0']) // add al, '0'
        .out_dx_al()
        .raw(&[0x88, 0xe0, 0x04, b'0']) // mov al, ah; add al, '0'
        .out_dx_al()
        .exit(0);
    let r = boot("mtrr-def-type", &code, &[]);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    // 0x806: type 6 (WB), byte 1 = 0x08 (E set, FE clear).
    assert_eq!(r.stdout, "68");
}
