//! Running an emulator around a guest: a child process killed at a
//! deadline, its output collected, and the "is this resource here?"
//! decision tests share (a missing resource skips, except under `CI=true`,
//! where it fails).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a bounded run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status; `None` if the process was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// The exit code, if the process exited (not killed, not signalled).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Whether the process was killed at the deadline.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` (stdin closed, stdout and stderr collected) and kills it if
/// it has not exited after `limit`. Never hangs longer than `limit` plus
/// the time to reap the killed process.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> std::io::Result<Outcome> {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Outcome {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Whether tests run under CI (`CI=true`), where a missing resource is a
/// failure rather than a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing resource: under CI a panic (test failure), otherwise
/// a `skipped: <reason>` line. Returns so the caller can `return`.
pub fn skip_or_fail(reason: &str) {
    if under_ci() {
        panic!("required resource missing under CI=true: {reason}");
    }
    println!("skipped: {reason}");
}

/// An executable found on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The directory `scripts/fetch-artifacts.sh` fills: `$PVH_ARTIFACTS`, else
/// `target/pvh-artifacts` in the workspace root.
pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("PVH_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("pvh-artifacts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_process_is_killed_and_output_kept() {
        let o = run_bounded(
            Command::new("sh").args(["-c", "echo hi; exec sleep 1000"]),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(o.timed_out());
        assert_eq!(o.stdout, "hi\n");
        let o = run_bounded(
            Command::new("sh").args(["-c", "echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(o.code(), Some(3));
        assert_eq!(o.stderr, "err\n");
    }
}
