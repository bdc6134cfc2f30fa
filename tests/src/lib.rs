//! Workspace-level tests for pvh. The tests live in `tests/tests/`; this
//! library holds what they share: where the guest artifacts are, how a
//! test decides between "skip" and "fail" when a resource is missing, and
//! running a guest under a watchdog.

pub mod conformance;
pub mod images;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `scripts/fetch-artifacts.sh` puts Debian's kernel, Xen and busybox.
pub fn artifacts() -> PathBuf {
    std::env::var_os("PVH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pvh-artifacts"))
}

/// Whether this run is CI's, where every resource must be present.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// `true` if `present`; otherwise prints `skipped: <reason>` and returns
/// `false`, or panics under CI, where a missing resource is a failure.
pub fn require(present: bool, reason: &str) -> bool {
    if present {
        return true;
    }
    assert!(!under_ci(), "required resource missing under CI: {reason}");
    println!("skipped: {reason}");
    false
}

/// An artifact's path, if it exists (see [`require`]).
pub fn artifact(name: &str) -> Option<PathBuf> {
    let path = artifacts().join(name);
    require(
        path.exists(),
        &format!(
            "{} missing (run scripts/fetch-artifacts.sh)",
            path.display()
        ),
    )
    .then_some(path)
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a guest run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit status; `None` if the watchdog killed it.
    pub status: Option<ExitStatus>,
    /// stdout and stderr, interleaved as they arrived per stream.
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` with stdin closed and stdout+stderr captured, killing it after
/// `limit`. Never hangs.
pub fn run_with_watchdog(cmd: &mut Command, limit: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    output.push_str(&String::from_utf8_lossy(&err.join().unwrap_or_default()));
    Run {
        status,
        output,
        elapsed: start.elapsed(),
    }
}

/// Builds a busybox initramfs with `scripts/mkinitramfs.sh`: `init` is the
/// text of `/init`; `files` are `(host path, path in the image)`.
pub fn initramfs(out: &Path, init: &str, files: &[(PathBuf, &str)]) {
    let dir = out.parent().expect("output has a parent");
    std::fs::create_dir_all(dir).expect("create output dir");
    let init_path = out.with_extension("init");
    std::fs::write(&init_path, init).expect("write init");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/mkinitramfs.sh"))
        .arg(out)
        .arg(&init_path);
    for (host, dest) in files {
        cmd.arg(format!("{}:{}", host.display(), dest));
    }
    let status = cmd
        .env("PVH_ARTIFACTS", artifacts())
        .status()
        .expect("run mkinitramfs.sh");
    assert!(
        status.success(),
        "mkinitramfs.sh failed for {}",
        out.display()
    );
}

/// QEMU (TCG, `-M pc`, 2 vCPUs, 2048 MiB, serial on stdout,
/// `isa-debug-exit` at 0xf4, which Xen passes through to dom0) running
/// Debian's Xen 4.17 (`xen`, the unzipped Multiboot ELF) with `modules` as
/// its multiboot modules in `-initrd` syntax (comma-separated, each `path
/// args`: the first is the PVH dom0 kernel, whose command line is its
/// args), dom0 a PVH dom0 of `dom0_mib` MiB. `cpu` is QEMU's `-cpu`: Xen
/// needs HAP (`max`); a Linux dom0 also needs `-rdtscp` (environment.md).
pub fn xen_under_qemu(xen: &Path, cpu: &str, modules: &str, dom0_mib: u32) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-cpu", cpu, "-M", "pc", "-smp", "2"])
        .args(["-m", "2048", "-no-reboot", "-nographic", "-nodefaults"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .arg("-kernel")
        .arg(xen)
        .args(["-initrd", modules])
        .args([
            "-append",
            &format!(
                "loglvl=all guest_loglvl=all noreboot console_timestamps=boot console=com1 \
                 dom0-iommu=none dom0=pvh dom0_mem={dom0_mib}M"
            ),
        ]);
    c
}

/// A fresh scratch directory under `target/` for one test (per process, so
/// that concurrent runs of the same test do not clobber each other).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The nested arrangement of `shared/reference/environment.md`: QEMU (TCG,
/// `-cpu EPYC`) runs Debian's kernel as L1, L1 loads Debian's kvm modules
/// and gets a real `/dev/kvm` with SVM, and a static `pvh` boots guests as
/// L2 from L1's busybox userland.
pub mod nested {
    use super::*;
    use pvh_bootparams::{BootParams, ZERO_PAGE_SIZE};

    /// Builds `pvh` as a static binary, which L1's busybox userland can run:
    /// non-PIE (`relocation-model=static`), so that it starts without
    /// relocating itself (scripts/bench-nested.sh builds the same way, into
    /// the same target directory).
    pub fn static_pvh() -> PathBuf {
        let target_dir = repo_root().join("target/static");
        let status = Command::new(env!("CARGO"))
            .current_dir(repo_root())
            .args(["build", "--release", "-p", "pvh-hypervisor", "--bin", "pvh"])
            .args(["--target", "x86_64-unknown-linux-gnu"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env(
                "RUSTFLAGS",
                "-C target-feature=+crt-static -C relocation-model=static",
            )
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo");
        assert!(status.success(), "static build of pvh failed");
        target_dir.join("x86_64-unknown-linux-gnu/release/pvh")
    }

    /// A key press for L1 every 5 s through QEMU's monitor socket. L1 can
    /// lose its next timer interrupt under TCG's nested SVM (NOHZ, one
    /// shot) and then sleeps on HLT for good; any interrupt makes it
    /// program the timer again (scripts/bench-nested.sh has the same).
    struct Keepalive {
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Keepalive {
        fn start(monitor: PathBuf) -> Self {
            use std::sync::atomic::Ordering;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = std::sync::Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                // Wakes every 250 ms (to stop soon when asked), presses
                // every 20th time: every 5 s.
                let mut ticks = 0u32;
                while !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(250));
                    ticks = ticks.wrapping_add(1);
                    if ticks % 20 != 0 || flag.load(Ordering::SeqCst) {
                        continue;
                    }
                    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&monitor) {
                        use std::io::Write;
                        let _ = s.write_all(b"sendkey shift\n");
                    }
                }
            });
            Self { stop, thread }
        }

        fn stop(self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = self.thread.join();
        }
    }

    /// Boots L1 with `files` (host path, path in L1) plus a static `pvh` at
    /// `/pvh` and Debian's kvm modules, runs `script` after the modules are
    /// loaded (L1 prints `L1-KVM-READY` if `/dev/kvm` appeared), then
    /// reboots. Returns L1's console (also saved as `dir/console.log`).
    /// `None` if QEMU or the artifacts are missing (see [`require`]).
    pub fn run_l1(
        dir: &Path,
        script: &str,
        files: &[(PathBuf, &str)],
        limit: Duration,
    ) -> Option<String> {
        if !require(
            have("qemu-system-x86_64"),
            "qemu-system-x86_64 not installed (scripts/setup.sh)",
        ) {
            return None;
        }
        let (vmlinux, kmods) = (artifact("vmlinux")?, artifact("kmods")?);
        let pvh = static_pvh();
        let order = std::fs::read_to_string(kmods.join("load-order")).expect("kmods/load-order");
        let modules: Vec<(PathBuf, String)> = order
            .split_whitespace()
            .map(|m| (kmods.join(m), format!("/kmods/{m}")))
            .collect();
        let mut all: Vec<(PathBuf, &str)> = vec![
            (pvh, "/pvh"),
            (kmods.join("load-order"), "/kmods/load-order"),
        ];
        all.extend(modules.iter().map(|(p, d)| (p.clone(), d.as_str())));
        all.extend(files.iter().cloned());
        let init = format!(
            "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
             for m in $(cat /kmods/load-order); do insmod /kmods/$m 2>/dev/null; done\n\
             [ -e /dev/kvm ] && echo L1-KVM-READY\n{script}\nreboot -f\n"
        );
        let l1_initrd = dir.join("l1-initrd.gz");
        initramfs(&l1_initrd, &init, &all);
        let monitor = dir.join("monitor.sock");
        let _ = std::fs::remove_file(&monitor);
        let keepalive = Keepalive::start(monitor.clone());
        let run = run_with_watchdog(
            Command::new("qemu-system-x86_64")
                .args([
                    "-M",
                    "q35,accel=tcg",
                    "-cpu",
                    "EPYC",
                    "-m",
                    "2048",
                    "-smp",
                    "1",
                ])
                .args([
                    "-nographic",
                    "-nodefaults",
                    "-serial",
                    "stdio",
                    "-no-reboot",
                ])
                .arg("-kernel")
                .arg(vmlinux)
                .arg("-initrd")
                .arg(&l1_initrd)
                .arg("-monitor")
                .arg(format!("unix:{},server=on,wait=off", monitor.display()))
                .args(["-append", "console=ttyS0 panic=-1 quiet reboot=k"]),
            limit,
        );
        keepalive.stop();
        let log = run.output.replace('\r', "");
        std::fs::write(dir.join("console.log"), &log).expect("save the console");
        assert!(
            run.status.is_some(),
            "L1 did not finish within {limit:?}; console in {}",
            dir.display()
        );
        assert!(log.contains("L1-KVM-READY"), "L1 has no /dev/kvm:\n{log}");
        Some(log)
    }

    /// Firecracker and Cloud Hypervisor from the peers directory
    /// ([`crate::conformance::peers_dir`]) with the
    /// C libraries they link, as `(host path, path in L1)` for [`run_l1`]:
    /// `/peers/firecracker`, `/peers/cloud-hypervisor`, and glibc, libgcc_s
    /// and the dynamic loader at their usual paths (the host's own, with
    /// symlinks resolved). In L1, Firecracker needs `--no-seccomp` (this
    /// build's filter is a placeholder) and ends on a guest reset; Cloud
    /// Hypervisor restarts on a reset and ends on an ACPI power-off. `None`
    /// if a binary or library is missing (see [`require`]).
    pub fn peer_files() -> Option<Vec<(PathBuf, &'static str)>> {
        let peers = crate::conformance::peers_dir();
        let mut files = Vec::new();
        for (name, dest) in [
            ("firecracker", "/peers/firecracker"),
            ("cloud-hypervisor", "/peers/cloud-hypervisor"),
        ] {
            let path = peers.join(name);
            if !require(
                path.is_file(),
                &format!(
                    "{} missing (set PVH_PEERS to the peers directory)",
                    path.display()
                ),
            ) {
                return None;
            }
            files.push((path, dest));
        }
        for lib in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib64/ld-linux-x86-64.so.2",
        ] {
            let Ok(real) = std::fs::canonicalize(lib) else {
                require(false, &format!("{lib} missing (the peers link it)"));
                return None;
            };
            files.push((real, lib));
        }
        Some(files)
    }

    /// The lines of one mode's section of the L1 console, between
    /// `NESTED-BEGIN mode` and `NESTED-END mode`.
    pub fn section<'a>(log: &'a str, mode: &str) -> Vec<&'a str> {
        let begin = format!("NESTED-BEGIN {mode}");
        let end = format!("NESTED-END {mode}");
        log.lines()
            .skip_while(|l| !l.contains(&begin))
            .take_while(|l| !l.contains(&end))
            .collect()
    }

    /// The exit status line `NESTED-END mode rc=N` of a mode.
    pub fn end_line<'a>(log: &'a str, mode: &str) -> &'a str {
        let end = format!("NESTED-END {mode}");
        log.lines().find(|l| l.contains(&end)).unwrap_or("")
    }

    /// What follows `key` on the first line that has it.
    pub fn field<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
        lines
            .iter()
            .find_map(|l| l.split_once(key).map(|(_, v)| v.trim()))
    }

    /// A zero page from the hex dump of `/sys/kernel/boot_params/data`.
    pub fn parse_zero_page(hex: &str) -> BootParams {
        let byte = |i: usize| {
            hex.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| byte(i).expect("hex digits"))
            .collect();
        assert_eq!(bytes.len(), ZERO_PAGE_SIZE, "zero page dump length");
        BootParams::from_page(bytes.as_slice().try_into().expect("4096 bytes"))
    }
}
