//! Timing a command from spawn to exit, and to the first output line that
//! contains each of some markers, with a monotonic clock: for machines
//! whose shell has no sub-second clock (busybox `date` has no `%N`), such
//! as the L1 guest of the nested benchmark (`scripts/bench-nested.sh`).
//!
//! Besides times it reports what a VMM's memory looked like: the peak RSS
//! of the command (`getrusage(RUSAGE_CHILDREN)` after it was reaped), and,
//! at the moment a chosen line appeared, its resident and transparent
//! huge-page backed anonymous memory (`/proc/PID/smaps_rollup`): whether
//! guest RAM is backed by huge pages is one of the things that decides how
//! fast a guest touches memory under nested paging.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What `/proc/PID/smaps_rollup` said about a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySnapshot {
    /// `Rss:`: resident memory of every mapping.
    pub rss_kib: u64,
    /// `AnonHugePages:`: anonymous memory backed by transparent huge pages.
    pub anon_huge_kib: u64,
}

impl MemorySnapshot {
    /// Parses the text of `/proc/PID/smaps_rollup` (or `smaps`, whose
    /// per-mapping fields are summed). Missing fields count as 0.
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(kib) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "Rss:" => s.rss_kib += kib,
                "AnonHugePages:" => s.anon_huge_kib += kib,
                _ => {}
            }
        }
        s
    }

    /// The snapshot of process `pid`, if its `smaps_rollup` is readable.
    ///
    /// A read can fail with `ESRCH` while the process is in `execve`: the
    /// file holds the memory map it was opened on, and exec drops that map
    /// before the read (a shell that prints, then `exec`s, races this way).
    /// So a failed read is retried a few times before giving up.
    pub fn of(pid: u32) -> Option<Self> {
        let path = format!("/proc/{pid}/smaps_rollup");
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some(Self::parse(&text));
            }
        }
        None
    }
}

/// What to do besides timing.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Note when the first line containing each of these appears.
    pub markers: Vec<String>,
    /// Once a line containing this appears: take a [`MemorySnapshot`] of
    /// the command, then kill it (for VMMs that do not exit when their
    /// guest is done).
    pub kill_at: Option<String>,
    /// Kill the command if it has not ended after this long.
    pub timeout: Option<Duration>,
}

/// What one timed run saw.
#[derive(Debug)]
pub struct Timing {
    /// How the command ended.
    pub status: ExitStatus,
    /// From just before spawning to its exit.
    pub total: Duration,
    /// For each marker, in the order given: when the first line containing
    /// it was read, or `None` if none did.
    pub markers: Vec<(String, Option<Duration>)>,
    /// Whether the command was killed at [`Options::kill_at`].
    pub killed: bool,
    /// Whether the command was killed at [`Options::timeout`].
    pub timed_out: bool,
    /// The command's memory when [`Options::kill_at`] appeared.
    pub snapshot: Option<MemorySnapshot>,
    /// What the kernel accounted to the command (and any children it
    /// reaped): peak RSS, page faults, CPU time.
    pub usage: Option<ChildUsage>,
}

/// The command's own resource usage (`wait4`): counts that depend less on
/// the machine's load than wall time does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildUsage {
    /// Peak resident set, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Minor page faults (`ru_minflt`).
    pub minor_faults: u64,
    /// User CPU time, microseconds.
    pub user_us: u64,
    /// System CPU time, microseconds.
    pub system_us: u64,
}

/// Runs `cmd`, copying its standard output line by line to `out` (carriage
/// returns removed) and noting when each of `markers` first appears.
pub fn time_command(
    cmd: &mut Command,
    markers: &[String],
    out: &mut dyn Write,
) -> std::io::Result<Timing> {
    let opts = Options {
        markers: markers.to_vec(),
        ..Options::default()
    };
    time_command_with(cmd, &opts, out)
}

/// [`time_command`] with [`Options`].
pub fn time_command_with(
    cmd: &mut Command,
    opts: &Options,
    out: &mut dyn Write,
) -> std::io::Result<Timing> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut seen: Vec<(String, Option<Duration>)> =
        opts.markers.iter().map(|m| (m.clone(), None)).collect();
    let (mut killed, mut snapshot) = (false, None);
    let watchdog = opts.timeout.map(|limit| Watchdog::start(child.id(), limit));
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).split(b'\n') {
            let line = line?;
            let at = start.elapsed();
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            for (marker, when) in seen.iter_mut().filter(|(_, w)| w.is_none()) {
                if text.contains(marker.as_str()) {
                    *when = Some(at);
                }
            }
            writeln!(out, "{text}")?;
            if !killed && opts.kill_at.as_deref().is_some_and(|k| text.contains(k)) {
                snapshot = MemorySnapshot::of(child.id());
                // A failed kill means it has exited already.
                let _ = child.kill();
                killed = true;
            }
        }
    }
    let (status, usage) = wait_with_usage(&mut child)?;
    let total = start.elapsed();
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    Ok(Timing {
        status,
        total,
        markers: seen,
        killed,
        timed_out,
        snapshot,
        usage,
    })
}

/// Kills a process with SIGKILL unless stopped before its time is up.
struct Watchdog {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Self {
        let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let shared = std::sync::Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*shared;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, limit, |done| !*done)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return false;
            }
            // The child is not reaped while this lock is held (`stop` takes
            // it first), so `pid` still names it.
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                return false;
            };
            // SAFETY: kill(2) with a pid and a signal number; no memory
            // is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
        });
        Self { done, thread }
    }

    /// Ends the watchdog; whether it had killed the process.
    fn stop(self) -> bool {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        self.thread.join().unwrap_or(false)
    }
}

/// Reaps `child` with `wait4`, which returns its exit status and its own
/// resource usage (including its reaped descendants), unlike
/// `getrusage(RUSAGE_CHILDREN)`, which sums every child this process ever
/// had. Falls back to [`std::process::Child::wait`] without usage.
fn wait_with_usage(
    child: &mut std::process::Child,
) -> std::io::Result<(ExitStatus, Option<ChildUsage>)> {
    use std::os::unix::process::ExitStatusExt;
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return Ok((child.wait()?, None));
    };
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    let rc = loop {
        // SAFETY: `status` and `usage` are writable and live for the call;
        // `pid` is our child, not yet reaped (only this function reaps it).
        let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
        if rc >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break rc;
        }
    };
    if rc != pid {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: wait4 succeeded and filled the struct (zeroed before, so
    // every field is initialized either way).
    let u = unsafe { usage.assume_init() };
    let us = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    let usage = ChildUsage {
        max_rss_kib: u64::try_from(u.ru_maxrss).unwrap_or(0),
        minor_faults: u64::try_from(u.ru_minflt).unwrap_or(0),
        user_us: us(u.ru_utime),
        system_us: us(u.ru_stime),
    };
    Ok((ExitStatus::from_raw(status), Some(usage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_once_in_order_and_status_is_kept() {
        let mut out = Vec::new();
        let t = time_command(
            Command::new("sh").args(["-c", "echo one; echo 'MARK\r'; echo MARK again; exit 3"]),
            &["MARK".into(), "absent".into()],
            &mut out,
        )
        .unwrap();
        assert_eq!(t.status.code(), Some(3));
        assert_eq!(String::from_utf8(out).unwrap(), "one\nMARK\nMARK again\n");
        assert_eq!(t.markers.len(), 2);
        assert_eq!(t.markers[0].0, "MARK");
        let mark = t.markers[0].1.expect("MARK seen");
        assert!(mark <= t.total, "{mark:?} > {:?}", t.total);
        assert_eq!(t.markers[1], ("absent".into(), None));
        assert!(!t.killed);
        assert!(t.snapshot.is_none());
        let usage = t.usage.expect("getrusage works");
        assert!(usage.max_rss_kib > 0 && usage.minor_faults > 0, "{usage:?}");
    }

    #[test]
    fn a_command_that_never_ends_is_killed_at_its_line_with_a_snapshot() {
        let mut out = Vec::new();
        let opts = Options {
            markers: vec!["READY".into()],
            kill_at: Some("READY".into()),
            timeout: None,
        };
        // `exec`: the shell itself becomes the sleeping process, so the
        // kill ends it and closes its output.
        let t = time_command_with(
            Command::new("sh").args(["-c", "echo READY; exec sleep 600"]),
            &opts,
            &mut out,
        )
        .unwrap();
        assert!(t.killed);
        assert_eq!(t.status.code(), None, "ended by a signal: {:?}", t.status);
        assert!(t.markers[0].1.is_some());
        assert!(t.total < Duration::from_secs(300), "{:?}", t.total);
        let snap = t.snapshot.expect("smaps_rollup of a live process");
        assert!(snap.rss_kib > 0, "{snap:?}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let opts = Options {
            timeout: Some(Duration::from_millis(200)),
            ..Options::default()
        };
        let t = time_command_with(
            Command::new("sh").args(["-c", "exec sleep 600"]),
            &opts,
            &mut Vec::new(),
        )
        .unwrap();
        assert!(t.timed_out);
        assert!(!t.killed);
        assert_eq!(t.status.code(), None, "{:?}", t.status);
        let t = time_command_with(&mut Command::new("true"), &opts, &mut Vec::new()).unwrap();
        assert!(!t.timed_out);
        assert_eq!(t.status.code(), Some(0));
    }

    #[test]
    fn smaps_fields_are_summed_and_others_ignored() {
        let text = "7f00-7f01 rw-p 00000000 00:00 0 [rollup]\nRss:  100 kB\nPss: 7 kB\n\
                    AnonHugePages:  2048 kB\nRss: 20 kB\nbogus line\nAnonHugePages: x kB\n";
        assert_eq!(
            MemorySnapshot::parse(text),
            MemorySnapshot {
                rss_kib: 120,
                anon_huge_kib: 2048
            }
        );
        assert_eq!(MemorySnapshot::parse(""), MemorySnapshot::default());
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let err =
            time_command(&mut Command::new("/nonexistent/prog"), &[], &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
