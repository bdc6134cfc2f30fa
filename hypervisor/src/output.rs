//! Everything `pvh` prints goes through here: a subcommand's product on
//! standard output ([`print()`]), one-line diagnostics on standard error
//! ([`diag!`](crate::diag)), a progress line on a terminal ([`Progress`]),
//! and the one policy for output that cannot be written ([`OutputError`],
//! [`Exit`]).
//!
//! The policy, the same for every subcommand:
//!
//! - **A closed pipe** (the reader of standard output or of the guest's
//!   console went away: `pvh inspect x | head -1`) ends `pvh` quietly, as
//!   it ends `cat` or `seq`: once the terminal is restored and the VM
//!   stopped, `pvh` dies of `SIGPIPE` ([`Exit::OutputClosed`]). Rust starts
//!   programs with `SIGPIPE` ignored, so such a write returns `EPIPE` and
//!   unwinds through the normal error paths first; the default action is
//!   restored and the signal raised only at the very end.
//! - **Any other failed output** (a full disk, an I/O error, an output file
//!   that cannot be created: standard output, `--serial FILE`, `wrap -o`)
//!   is one line on standard error and status
//!   [`OUTPUT`](crate::status::OUTPUT).
//! - **Standard error** only carries diagnostics: a failed write there is
//!   ignored and never changes the status, so `pvh boot 2>/dev/full` still
//!   exits with the guest's status.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Termination};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::outcome::status;

/// How `pvh` ends: a status, or quietly because its output was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit with this status (docs/hypervisor.md).
    Status(u8),
    /// The reader of an output has gone (`EPIPE`): die of `SIGPIPE`, as
    /// Unix tools do.
    OutputClosed,
}

/// What a shell reports for a process that died of `SIGPIPE` (128 + 13).
pub const SIGPIPE_STATUS: u8 = 128 + libc::SIGPIPE as u8;

impl Exit {
    /// The status a shell sees: the status itself, or 141 for a death by
    /// `SIGPIPE`.
    pub fn code(self) -> u8 {
        match self {
            Self::Status(s) => s,
            Self::OutputClosed => SIGPIPE_STATUS,
        }
    }
}

/// Compares the status a shell sees ([`Exit::code`]), so callers of
/// [`crate::cli::main_with`] can check `== 0`.
impl PartialEq<u8> for Exit {
    fn eq(&self, other: &u8) -> bool {
        self.code() == *other
    }
}

impl From<u8> for Exit {
    fn from(status: u8) -> Self {
        Self::Status(status)
    }
}

impl Termination for Exit {
    fn report(self) -> ExitCode {
        if self == Self::OutputClosed {
            die_of_sigpipe();
        }
        ExitCode::from(self.code())
    }
}

/// Restores `SIGPIPE`'s default action, unblocks it and raises it: the
/// process ends as if a write to the closed pipe had killed it. Returns
/// only if the signal could not be delivered.
fn die_of_sigpipe() {
    // Buffered standard output cannot reach a closed pipe; drop it quietly.
    // SAFETY: plain libc calls with valid arguments: a fresh, initialised
    // signal set, the default disposition of a valid signal, and raise.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
}

/// An output could not be created or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader has gone (`EPIPE`).
    #[error("{what}: the reader has gone")]
    Closed {
        /// What was being written ("standard output", a path).
        what: String,
    },
    /// An output file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing failed (a full disk, an I/O error).
    #[error("writing {what} failed: {source}")]
    Write {
        /// What was being written ("standard output", a path).
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Whether `e` says the reader of a pipe has gone.
pub fn is_closed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

impl OutputError {
    /// A failed write to `what`: [`Closed`](Self::Closed) for `EPIPE`,
    /// [`Write`](Self::Write) for anything else.
    pub fn write(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        if is_closed(&source) {
            Self::Closed { what }
        } else {
            Self::Write { what, source }
        }
    }

    /// How `pvh` ends after this error: quietly for a closed pipe, else with
    /// the message on standard error and status
    /// [`OUTPUT`](status::OUTPUT).
    pub fn exit(&self) -> Exit {
        match self {
            Self::Closed { .. } => Exit::OutputClosed,
            _ => {
                diag(format_args!("pvh: {self}"));
                Exit::Status(status::OUTPUT)
            }
        }
    }
}

/// What standard output is called in messages.
pub const STDOUT: &str = "standard output";

/// Writes `bytes` to standard output and flushes it: a subcommand's
/// product (a plan, a report).
pub fn print(bytes: impl AsRef<[u8]>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes.as_ref())
        .and_then(|()| out.flush())
        .map_err(|e| OutputError::write(STDOUT, e))
}

/// Writes `bytes` to the file at `path` (created or truncated): an output
/// file such as `pvh wrap -o`. A write that fails part-way (a full disk)
/// removes what was written, if the path is a regular file, so no
/// truncated image is left behind looking valid; a device or a pipe
/// (`/dev/stdout`) is written as it is.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = std::fs::File::create(path).map_err(|source| OutputError::Create {
        path: path.to_owned(),
        source,
    })?;
    let written = file.write_all(bytes).and_then(|()| file.flush());
    let Err(e) = written else {
        return Ok(());
    };
    if file.metadata().is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(path);
    }
    Err(OutputError::write(path.display().to_string(), e))
}

/// Writes one diagnostic line (a newline is added) to standard error, in
/// one write, and erases a [`Progress`] line first. Failure is ignored:
/// diagnostics never change how `pvh` ends.
pub fn diag(line: fmt::Arguments<'_>) {
    let mut text = String::new();
    if progress_visible() {
        text.push_str(ERASE_LINE);
    }
    let _ = fmt::write(&mut text, line);
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// `diag!("pvh: {x}")`: [`diag`] with `format!` arguments, the one way
/// `pvh` writes to standard error.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::output::diag(format_args!($($arg)*))
    };
}

/// Carriage return, then erase to the end of the line (ECMA-48 EL).
const ERASE_LINE: &str = "\r\x1b[K";

/// Whether a progress line is on the screen (so a diagnostic erases it).
static PROGRESS_SHOWN: AtomicBool = AtomicBool::new(false);

fn progress_visible() -> bool {
    PROGRESS_SHOWN.load(Ordering::SeqCst)
}

/// How long work runs before its progress line appears.
pub const PROGRESS_DELAY: Duration = Duration::from_millis(500);
/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// A progress line for long work (reading large inputs, decompressing a
/// kernel): `pvh: <stage>... 2.4s`, on standard error, redrawn in place,
/// and erased when the work ends (on drop). Drawn only when standard error
/// is a terminal, and only once the work has run for [`PROGRESS_DELAY`],
/// so quick runs, pipes and log files never see it.
#[derive(Debug)]
pub struct Progress {
    shared: Option<Arc<ProgressState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct ProgressState {
    stage: Mutex<String>,
    done: Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Progress {
    /// Starts a progress line for `stage` if standard error is a terminal;
    /// otherwise a no-op.
    pub fn start(stage: impl Into<String>) -> Self {
        if !io::stderr().is_terminal() {
            return Self::none();
        }
        let shared = Arc::new(ProgressState {
            stage: Mutex::new(stage.into()),
            done: Mutex::new(false),
            wake: std::sync::Condvar::new(),
        });
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || state.draw_until_done())
            .ok();
        Self {
            shared: Some(shared),
            thread,
        }
    }

    /// A progress that shows nothing.
    pub fn none() -> Self {
        Self {
            shared: None,
            thread: None,
        }
    }

    /// Names the stage now running.
    pub fn stage(&self, stage: impl Into<String>) {
        if let Some(s) = &self.shared {
            *s.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage.into();
        }
    }
}

impl ProgressState {
    fn draw_until_done(&self) {
        let start = Instant::now();
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = PROGRESS_DELAY;
        while !*done {
            done = self
                .wake
                .wait_timeout(done, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if *done {
                break;
            }
            wait = PROGRESS_TICK;
            let stage = self
                .stage
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let line = format!(
                "{ERASE_LINE}pvh: {stage}... {:.1}s",
                start.elapsed().as_secs_f64()
            );
            PROGRESS_SHOWN.store(true, Ordering::SeqCst);
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
        if PROGRESS_SHOWN.swap(false, Ordering::SeqCst) {
            let _ = io::stderr().lock().write_all(ERASE_LINE.as_bytes());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            *s.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
            s.wake.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epipe_is_closed_and_anything_else_a_write_error() {
        let closed = OutputError::write(STDOUT, io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, OutputError::Closed { .. }));
        assert_eq!(closed.exit(), Exit::OutputClosed);
        let full = OutputError::write(STDOUT, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(full, OutputError::Write { .. }));
        assert_eq!(full.exit(), Exit::Status(status::OUTPUT));
        assert!(
            full.to_string()
                .starts_with("writing standard output failed")
        );
    }

    #[test]
    fn exit_codes_are_what_a_shell_reports() {
        assert_eq!(Exit::Status(42).code(), 42);
        assert_eq!(Exit::OutputClosed.code(), 141);
        assert_eq!(Exit::from(7), Exit::Status(7));
        assert_eq!(Exit::Status(0), 0);
        assert_ne!(Exit::OutputClosed, 0);
    }

    #[test]
    fn progress_without_a_terminal_draws_nothing() {
        // Test harness stderr is captured or a pipe: never a terminal here
        // unless run by hand, in which case the line is erased on drop.
        let p = Progress::start("testing");
        p.stage("still testing");
        drop(p);
        assert!(!progress_visible());
    }
}
