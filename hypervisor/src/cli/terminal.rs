//! The interactive console's terminal: when `pvh boot`'s standard input is
//! the terminal it runs in (in the foreground), the terminal goes into raw
//! mode so every key, Ctrl-C included, reaches the guest; Ctrl-A x quits
//! (see [`crate::devices::input`]).
//!
//! The saved settings come back on every way out: [`RawMode`]'s `Drop`
//! (the guest ended, a timeout, an error, a panic unwinding) and, for a
//! signal that would end `pvh` (SIGINT, SIGTERM, SIGHUP, SIGQUIT from
//! `kill`; the keys themselves no longer send signals in raw mode), a
//! handler that restores the terminal and then lets the signal take its
//! default course.

use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// Signals whose default action ends the process and that are restored
/// from.
const FATAL_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The settings to restore, for the signal handler (null when the terminal
/// is not in raw mode). Points at a leaked allocation that is never freed,
/// so the handler can never see it dangle.
static SAVED: AtomicPtr<libc::termios> = AtomicPtr::new(std::ptr::null_mut());
/// The handlers are installed once per process.
static HANDLERS: AtomicBool = AtomicBool::new(false);

/// Whether `fd` is a terminal this process may change: a terminal whose
/// foreground process group is ours (a background `pvh boot &` must not
/// touch it, or it would be stopped by SIGTTOU).
pub fn is_foreground_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read process state.
    unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// Whether standard input is the foreground terminal, so `pvh boot` runs an
/// interactive console.
pub fn stdin_is_interactive() -> bool {
    io::stdin().is_terminal() && is_foreground_terminal(io::stdin().as_raw_fd())
}

/// A terminal in raw mode; dropping it restores the settings it found.
#[derive(Debug)]
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` (a terminal) into raw mode: no line editing, no echo, no
    /// signals from keys, no input translation; output processing stays on,
    /// so `pvh`'s own messages still start at the left margin.
    pub fn enter(fd: RawFd) -> io::Result<Self> {
        // SAFETY: an all-zero termios is a valid value of this plain C struct.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        install_handlers();
        publish(saved);
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_oflag |= libc::OPOST;
        // SAFETY: `raw` is a valid termios for `fd`.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            let e = io::Error::last_os_error();
            SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
            return Err(e);
        }
        Ok(Self { fd, saved })
    }

    /// Raw mode on standard input.
    pub fn stdin() -> io::Result<Self> {
        Self::enter(io::stdin().as_raw_fd())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: `saved` is the valid termios read from `fd` in `enter`.
        // TCSAFLUSH also drops typed-ahead input meant for the guest, so it
        // does not land in the shell.
        unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved) };
    }
}

/// Makes `saved` the settings the signal handler restores.
fn publish(saved: libc::termios) {
    let slot = Box::into_raw(Box::new(saved));
    // The previous slot (from an earlier raw mode) is leaked on purpose: a
    // handler running on another thread may still be reading it.
    SAVED.store(slot, Ordering::SeqCst);
}

extern "C" fn restore_and_die(sig: libc::c_int) {
    let saved = SAVED.load(Ordering::SeqCst);
    if !saved.is_null() {
        // SAFETY: `saved` points at a termios that is never freed;
        // tcsetattr is async-signal-safe.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, saved) };
    }
    // SAFETY: signal and raise are async-signal-safe. The signal is
    // blocked while this handler runs, so it is delivered, with its
    // default action (ending the process), when the handler returns.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_handlers() {
    if HANDLERS.swap(true, Ordering::SeqCst) {
        return;
    }
    for sig in FATAL_SIGNALS {
        // SAFETY: an all-zero sigaction is valid; the handler is an
        // `extern "C" fn(c_int)` as sa_handler expects (no SA_SIGINFO).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            // A signal the parent told us to ignore stays ignored.
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = restore_and_die as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}
