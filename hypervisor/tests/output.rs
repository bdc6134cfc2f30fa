//! Output that cannot be written, with the hostile setups of the input
//! campaign (issue 14) as fixtures: `/dev/full` as standard output or
//! standard error, a pipe whose reader has gone, output paths that cannot
//! be created. None of them may panic (status 101): a closed pipe ends
//! `pvh` by SIGPIPE with nothing on stderr, a full disk is one message and
//! status 77, and a failing stderr never changes the guest's status.

#[path = "../../loader/bootdomains/tests/bootinfo_util/mod.rs"]
mod bootinfo_util;
mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootinfo_util::{Node, Scratch, chosen};
use common::{Asm, artifact, kvm_available, pvh_elf};
use pvh_hypervisor::status;

const WATCHDOG: Duration = Duration::from_secs(120);

/// Where a stream of the child goes.
enum Sink {
    /// Captured by the test.
    Capture,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose read end is already closed: every write fails with
    /// EPIPE.
    Closed,
}

impl Sink {
    fn stdio(&self) -> Stdio {
        match self {
            Sink::Capture => Stdio::piped(),
            Sink::Full => File::options()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full")
                .into(),
            Sink::Closed => {
                let mut fds = [0; 2];
                // SAFETY: pipe2 writes two new file descriptors into `fds`.
                let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
                assert_eq!(rc, 0, "pipe2");
                // SAFETY: both descriptors are fresh and owned by nobody else.
                let (read, write) =
                    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                drop(read);
                write.into()
            }
        }
    }
}

struct Run {
    /// The exit status, or `None` if a signal ended the process.
    code: Option<i32>,
    /// The signal that ended it, if any.
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_no_panic(&self) {
        assert_ne!(self.code, Some(101), "pvh panicked: {}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }

    /// Ended quietly by SIGPIPE, as `cat` does when its reader has gone.
    fn assert_sigpipe(&self) {
        self.assert_no_panic();
        assert_eq!(
            (self.code, self.signal),
            (None, Some(libc::SIGPIPE)),
            "stderr: {}",
            self.stderr
        );
        assert_eq!(self.stderr, "", "a closed pipe ends quietly");
    }

    /// Status 77 with one line naming the failed output.
    fn assert_output_error(&self, what: &str) {
        self.assert_no_panic();
        assert_eq!(
            self.code,
            Some(i32::from(status::OUTPUT)),
            "{}",
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one message: {}", self.stderr);
        assert!(
            lines[0].starts_with("pvh") && lines[0].contains(what),
            "{}",
            self.stderr
        );
    }
}

fn pvh(args: &[&str], stdout: Sink, stderr: Sink) -> Run {
    pvh_in(None, args, stdout, stderr)
}

fn pvh_in(dir: Option<&Path>, args: &[&str], stdout: Sink, stderr: Sink) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pvh"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("spawn pvh");
    let read = |s: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            panic!("watchdog: pvh {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        signal: status.signal(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn scratch_guest(dir: &Scratch, name: &str, code: &Asm) -> PathBuf {
    dir.file(name, &pvh_elf(code.bytes()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn boot_plan_to_a_full_disk_or_a_closed_pipe() {
    let dir = Scratch::new();
    let k = scratch_guest(&dir, "k.elf", &Asm::new().exit(0));
    let args = ["boot", "--kernel", s(&k), "--plan"];
    pvh(&args, Sink::Full, Sink::Capture).assert_output_error("standard output");
    pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
    // Both at once: nothing can be said, and still no panic.
    let r = pvh(&args, Sink::Full, Sink::Full);
    r.assert_no_panic();
    assert_eq!(r.code, Some(i32::from(status::OUTPUT)));
}

#[test]
fn inspect_text_and_json_to_a_full_disk_or_a_closed_pipe() {
    let dir = Scratch::new();
    let k = scratch_guest(&dir, "k.elf", &Asm::new().exit(0));
    for json in [false, true] {
        let mut args = vec!["inspect", s(&k)];
        if json {
            args.push("--json");
        }
        pvh(&args, Sink::Full, Sink::Capture).assert_output_error("standard output");
        pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
        // An unreadable image with stderr on /dev/full: still its status.
        let r = pvh(
            &["inspect", "/nonexistent/image"],
            Sink::Capture,
            Sink::Full,
        );
        r.assert_no_panic();
        assert_eq!(r.code, Some(i32::from(status::BAD_INPUT)));
    }
}

/// A dom0less tree of two domains (`dom1`, `dom2`: 64 MiB, one vCPU each)
/// running the built-in probe, written into `dir`: (tree, kernel).
fn two_probe_domains(dir: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let kernel = dir.file("probe.elf", pvh_guests::PROBE);
    let dom = |name: &str| {
        Node::new(name)
            .prop("compatible", "xen,domain")
            .prop("memory", [0, 0x1_0000])
            .prop("cpus", 1u32)
            .child(
                Node::new("kernel")
                    .prop("compatible", ["multiboot,kernel", "multiboot,module"])
                    .prop("module-index", 0u32),
            )
    };
    (
        dir.file("two.dtb", &chosen(vec![dom("dom1"), dom("dom2")])),
        kernel,
    )
}

#[test]
fn launch_plan_to_a_full_disk_or_a_closed_pipe() {
    // `--plan` builds every domain (the same check as `launch`), so the
    // tree names a real kernel: two domains of the built-in probe.
    let dir = Scratch::new();
    let (dtb, kernel) = two_probe_domains(&dir);
    let args = ["launch", s(&dtb), "--module", s(&kernel), "--plan"];
    let ok = pvh(&args, Sink::Capture, Sink::Capture);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    for d in ["d1 dom1:", "d2 dom2:"] {
        assert!(
            ok.stdout.lines().any(|l| l.starts_with(d)),
            "no {d} line in {}",
            ok.stdout
        );
    }
    pvh(&args, Sink::Full, Sink::Capture).assert_output_error("standard output");
    pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
}

#[test]
fn help_to_a_full_disk_or_a_closed_pipe() {
    pvh(&["--help"], Sink::Full, Sink::Capture).assert_output_error("standard output");
    pvh(&["--help"], Sink::Closed, Sink::Capture).assert_sigpipe();
    // A usage error with stderr full is still a usage error.
    let r = pvh(&["frobnicate"], Sink::Capture, Sink::Full);
    assert_eq!(r.code, Some(i32::from(status::USAGE)));
}

#[test]
fn guest_status_survives_a_failing_stderr() {
    if !kvm_available("guest_status_survives_a_failing_stderr") {
        return;
    }
    let dir = Scratch::new();
    for (code, name) in [(0u8, "exit0.elf"), (5, "exit5.elf")] {
        let k = scratch_guest(&dir, name, &Asm::new().print("hi\n").exit(code));
        let r = pvh(&["boot", "--kernel", s(&k)], Sink::Capture, Sink::Full);
        r.assert_no_panic();
        assert_eq!(r.code, Some(i32::from(code)));
        assert_eq!(r.stdout, "hi\n");
        let r = pvh(&["boot", "--kernel", s(&k)], Sink::Capture, Sink::Closed);
        assert_eq!(r.code, Some(i32::from(code)), "a closed stderr too");
    }
}

#[test]
fn guest_console_to_a_full_disk_or_a_closed_pipe() {
    if !kvm_available("guest_console_to_a_full_disk_or_a_closed_pipe") {
        return;
    }
    let dir = Scratch::new();
    let k = scratch_guest(&dir, "k.elf", &Asm::new().print("line\n").exit(0));
    let args = ["boot", "--kernel", s(&k)];
    pvh(&args, Sink::Full, Sink::Capture).assert_output_error("standard output");
    pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
    // The console written to a full device named by --serial.
    let r = pvh(
        &["boot", "--kernel", s(&k), "--serial", "/dev/full"],
        Sink::Capture,
        Sink::Capture,
    );
    r.assert_output_error("/dev/full");
    // The debug console (port 0xe9) goes the same way.
    let e9 = Asm::new()
        .mov_dx(0xe9)
        .mov_al(b'!')
        .out_dx_al()
        .mov_al(b'\n')
        .out_dx_al()
        .exit(0);
    let k = scratch_guest(&dir, "e9.elf", &e9);
    pvh(&["boot", "--kernel", s(&k)], Sink::Full, Sink::Capture)
        .assert_output_error("standard output");
}

#[test]
fn launched_consoles_to_a_full_disk_or_a_closed_pipe() {
    if !kvm_available("launched_consoles_to_a_full_disk_or_a_closed_pipe") {
        return;
    }
    // Two domains running the built-in probe (it prints as soon as it
    // starts): 64 MiB and one vCPU each.
    let dir = Scratch::new();
    let (dtb, kernel) = two_probe_domains(&dir);
    let args = ["launch", s(&dtb), "--module", s(&kernel), "--timeout", "60"];
    let ok = pvh(&args, Sink::Capture, Sink::Capture);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(ok.stdout.contains("(d1) probe.done=1"), "{}", ok.stdout);
    let full = pvh(&args, Sink::Full, Sink::Capture);
    full.assert_no_panic();
    assert_eq!(
        full.code,
        Some(i32::from(status::OUTPUT)),
        "{}",
        full.stderr
    );
    assert!(
        full.stderr.contains("writing guest output failed"),
        "{}",
        full.stderr
    );
    pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
}

#[test]
fn wrap_output_to_a_full_disk_a_closed_pipe_or_a_bad_path() {
    let Some(bz) = artifact("bzImage") else {
        return;
    };
    let dir = Scratch::new();
    let out = dir.0.join("w.elf");
    let args = ["wrap", s(&bz), "-o", s(&out)];
    // The summary line to a full disk: the image is written, the status
    // says the output failed.
    pvh(&args, Sink::Full, Sink::Capture).assert_output_error("standard output");
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    pvh(&args, Sink::Closed, Sink::Capture).assert_sigpipe();
    std::fs::remove_file(&out).unwrap();
    // -o on a full device: status 77, and the device is not "cleaned up".
    let r = pvh(
        &["wrap", s(&bz), "-o", "/dev/full"],
        Sink::Capture,
        Sink::Capture,
    );
    r.assert_output_error("/dev/full");
    assert!(Path::new("/dev/full").exists());
    // -o where no file can be created.
    let r = pvh(
        &["wrap", s(&bz), "-o", "/nonexistent/dir/w.elf"],
        Sink::Capture,
        Sink::Capture,
    );
    r.assert_output_error("cannot create /nonexistent/dir/w.elf");
    // A bad input: nothing is created.
    let junk = dir.file("junk", b"not a kernel");
    let r = pvh(
        &["wrap", s(&junk), "-o", s(&out)],
        Sink::Capture,
        Sink::Capture,
    );
    assert_eq!(r.code, Some(i32::from(status::BAD_INPUT)), "{}", r.stderr);
    assert!(!out.exists(), "no output for a bad input");
}

#[test]
fn serial_dash_is_stdout_and_creates_no_file() {
    if !kvm_available("serial_dash_is_stdout_and_creates_no_file") {
        return;
    }
    let dir = Scratch::new();
    let k = scratch_guest(&dir, "k.elf", &Asm::new().print("to stdout").exit(0));
    for spec in ["-", "stdout"] {
        let r = pvh_in(
            Some(&dir.0),
            &["boot", "--kernel", s(&k), "--serial", spec],
            Sink::Capture,
            Sink::Capture,
        );
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(r.stdout, "to stdout");
        assert!(!dir.0.join(spec).exists(), "no file named {spec}");
    }
    // `./-` is how a file called `-` is named.
    let r = pvh_in(
        Some(&dir.0),
        &["boot", "--kernel", s(&k), "--serial", "./-"],
        Sink::Capture,
        Sink::Capture,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("-")).unwrap(),
        "to stdout"
    );
}

#[test]
fn serial_file_is_created_only_for_valid_inputs_and_bad_paths_are_77() {
    let dir = Scratch::new();
    let log = dir.0.join("serial.log");
    // A bad kernel: input status, and no serial file.
    let junk = dir.file("junk", b"this is not a kernel");
    let r = pvh(
        &["boot", "--kernel", s(&junk), "--serial", s(&log)],
        Sink::Capture,
        Sink::Capture,
    );
    assert_eq!(r.code, Some(i32::from(status::BAD_INPUT)), "{}", r.stderr);
    assert!(!log.exists(), "serial file created for a bad kernel");
    // A missing initrd: the same.
    let k = scratch_guest(&dir, "k.elf", &Asm::new().exit(0));
    let r = pvh(
        &[
            "boot",
            "--kernel",
            s(&k),
            "--initrd",
            "/nonexistent/initrd",
            "--serial",
            s(&log),
        ],
        Sink::Capture,
        Sink::Capture,
    );
    assert_eq!(r.code, Some(i32::from(status::BAD_INPUT)), "{}", r.stderr);
    assert!(!log.exists());
    if !kvm_available("serial_file_is_created_only_for_valid_inputs_and_bad_paths_are_77") {
        return;
    }
    // A serial path that cannot be created: its own status, not 66.
    let r = pvh(
        &[
            "boot",
            "--kernel",
            s(&k),
            "--serial",
            "/nonexistent/dir/log",
        ],
        Sink::Capture,
        Sink::Capture,
    );
    r.assert_output_error("cannot create /nonexistent/dir/log");
}

#[test]
fn memory_beyond_the_host_is_refused_whatever_the_unit() {
    let dir = Scratch::new();
    let k = scratch_guest(&dir, "k.elf", &Asm::new().exit(0));
    // 8 TiB: more than any machine this runs on has (RAM + swap).
    for size in ["8192G", "8T", "32768G", "1P"] {
        let r = pvh(
            &["boot", "--kernel", s(&k), "--memory", size],
            Sink::Capture,
            Sink::Capture,
        );
        assert_eq!(
            r.code,
            Some(i32::from(status::USAGE)),
            "{size}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("more than this host can give"),
            "{size}: {}",
            r.stderr
        );
    }
    // `1T` and `1024G` are one size with one verdict (the plan does not
    // need KVM).
    let verdict = |size: &str| {
        pvh(
            &["boot", "--kernel", s(&k), "--memory", size, "--plan"],
            Sink::Capture,
            Sink::Capture,
        )
        .code
    };
    assert_eq!(verdict("1T"), verdict("1024G"));
    assert_eq!(verdict("64M"), Some(0));
}

#[test]
fn zero_timeout_is_a_usage_error() {
    for zero in ["0", "0.0"] {
        let r = pvh(&["boot", "--timeout", zero], Sink::Capture, Sink::Capture);
        assert_eq!(r.code, Some(i32::from(status::USAGE)), "{}", r.stderr);
        assert!(r.stderr.contains("more than 0 seconds"), "{}", r.stderr);
    }
}
