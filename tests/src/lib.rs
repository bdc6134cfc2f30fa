//! Workspace-level tests for pvh. The tests live in `tests/tests/`; this
//! library holds what they share: where the guest artifacts are, how a
//! test decides between "skip" and "fail" when a resource is missing, and
//! running a guest under a watchdog.

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
