//! Runs a VM's vCPUs, one host thread each, until the first vCPU ends the
//! VM or the timeout expires; then stops the others. (One vCPU with no
//! timeout runs on the calling thread instead: see [`run`].)
//!
//! A vCPU blocked in KVM_RUN (guest spinning or halted with interrupts off)
//! only comes back when a signal interrupts the ioctl, so stopping is: raise
//! the shared `stop` flag, then send [`kick_signal`] to every vCPU thread
//! until it has returned. The handler does nothing; its only effect is the
//! EINTR. Kicks repeat because one sent just before a thread re-enters
//! KVM_RUN is lost. A thread that has reported its end is past KVM_RUN for
//! good: it is joined without kicks or waiting, so a one-vCPU run ends
//! without any sleep. Another thread can end a running VM through a
//! [`Stopper`] (`pvh launch` does when its control domain ends).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::error::Error;
use crate::outcome::VmEnd;
use crate::vcpu::{Vcpu, VcpuStats};

/// How often a stopping vCPU thread that has not reported yet is kicked
/// again.
const KICK_INTERVAL: Duration = Duration::from_millis(2);
/// How long to wait for vCPU threads to stop before giving up on them
/// (they are then left to die with the process).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The real-time signal used to kick vCPU threads out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn noop_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op kick handler once per process. Without it the kick
/// signal's default action would kill the process.
fn install_kick_handler() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| register_signal_handler(kick_signal(), noop_handler).map_err(|e| e.errno()))
        .map_err(|errno| Error::Os {
            op: "installing the vCPU kick signal handler",
            source: std::io::Error::from_raw_os_error(errno),
        })
}

/// The result of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Why the VM ended.
    pub end: VmEnd,
    /// Which vCPU ended it (`None` for a timeout).
    pub by: Option<u8>,
    /// Exit counts per vCPU, by vCPU index (vCPUs that did not stop in time
    /// are missing).
    pub stats: Vec<(u8, VcpuStats)>,
}

/// What the vCPU threads (and a [`Stopper`]) tell the waiting thread.
enum Msg {
    /// vCPU `id` ended the VM.
    Ended(u8, Box<VmEnd>),
    /// vCPU `id`'s thread ended without a report (it panicked).
    Died(u8),
    /// The VMM asks the VM to end ([`Stopper::stop`]).
    Stop,
    /// The user asks the VM to end ([`Stopper::quit`]).
    Quit,
}

/// Sends [`Msg::Died`] unless the thread reported: a vCPU thread that
/// panics still accounts for itself.
struct Accounted {
    id: u8,
    tx: mpsc::Sender<Msg>,
    reported: bool,
}

impl Accounted {
    fn report(mut self, end: VmEnd) {
        self.reported = true;
        // The receiver only goes away once the run is over.
        let _ = self.tx.send(Msg::Ended(self.id, Box::new(end)));
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        if !self.reported {
            let _ = self.tx.send(Msg::Died(self.id));
        }
    }
}

/// A VM whose vCPUs run on their threads ([`start`]); [`Running::wait`]
/// waits for its end.
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<(u8, JoinHandle<VcpuStats>)>,
    rx: mpsc::Receiver<Msg>,
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("vcpus", &self.threads.len())
            .finish_non_exhaustive()
    }
}

/// Ends a [`Running`] VM from another thread: its [`Running::wait`]
/// returns [`VmEnd::Destroyed`] (unless the VM ended first).
#[derive(Debug, Clone)]
pub struct Stopper(mpsc::Sender<Msg>);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ended(id, end) => write!(f, "Ended({id}, {end})"),
            Self::Died(id) => write!(f, "Died({id})"),
            Self::Stop => f.write_str("Stop"),
            Self::Quit => f.write_str("Quit"),
        }
    }
}

impl Stopper {
    /// Asks the VM to end; returns at once.
    pub fn stop(&self) {
        // A VM that has already ended no longer listens.
        let _ = self.0.send(Msg::Stop);
    }

    /// Ends the VM for the user (the interactive console's Ctrl-A x): its
    /// [`Running::wait`] returns [`VmEnd::Quit`].
    pub fn quit(&self) {
        let _ = self.0.send(Msg::Quit);
    }
}

/// Runs `vcpus` (boot state already set) until one ends the VM, or until
/// `timeout`.
///
/// One vCPU without a timeout runs on the calling thread: only that vCPU
/// can end such a VM, so there is nothing for a second thread to wait for
/// and no one to stop. That saves the thread (its clone, stack and malloc
/// arena), which is a measurable share of a short run's cost in a nested
/// L1 (docs/benchmarks.md, "pvh's own cost in L1"). Its report is the one
/// a vCPU thread would give, a panic included.
pub fn run(mut vcpus: Vec<Vcpu>, timeout: Option<Duration>) -> Result<RunReport, Error> {
    if timeout.is_none() && vcpus.len() == 1 {
        if let Some(vcpu) = vcpus.pop() {
            return Ok(run_here(vcpu));
        }
    }
    Ok(start(vcpus)?.wait(timeout))
}

/// Runs one vCPU on the calling thread until it ends the VM.
fn run_here(mut vcpu: Vcpu) -> RunReport {
    let id = vcpu.id();
    // Never raised: nothing else can end this VM.
    let stop = AtomicBool::new(false);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vcpu.run(&stop)));
    match ran {
        Ok(end) => RunReport {
            end,
            by: Some(id),
            stats: vec![(id, vcpu.stats())],
        },
        Err(_) => RunReport {
            end: VmEnd::Unhandled {
                exit: "vCPU thread panicked".into(),
                regs: None,
            },
            by: None,
            stats: Vec::new(),
        },
    }
}

/// Starts one thread per vCPU (boot state already set).
pub fn start(vcpus: Vec<Vcpu>) -> Result<Running, Error> {
    install_kick_handler()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut threads: Vec<(u8, JoinHandle<VcpuStats>)> = Vec::new();
    for mut vcpu in vcpus {
        let id = vcpu.id();
        let thread_stop = Arc::clone(&stop);
        let account = Accounted {
            id,
            tx: tx.clone(),
            reported: false,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                let end = vcpu.run(&thread_stop);
                account.report(end);
                vcpu.stats()
            });
        match spawned {
            Ok(handle) => threads.push((id, handle)),
            Err(source) => {
                stop_all(&stop, &threads, &rx, BTreeSet::new());
                return Err(Error::Thread { id, source });
            }
        }
    }
    Ok(Running {
        stop,
        threads,
        rx,
        tx,
    })
}

/// How the wait for the first report ended.
enum First {
    Ended(u8, Box<VmEnd>),
    Timeout(Duration),
    Stopped,
    Quit,
    AllDied,
}

impl Running {
    /// A handle that ends this VM from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.tx.clone())
    }

    /// Waits until a vCPU ends the VM, `timeout` expires, or a [`Stopper`]
    /// asks; then stops the other vCPUs and reports.
    pub fn wait(self, timeout: Option<Duration>) -> RunReport {
        let Running {
            stop,
            threads,
            rx,
            tx,
        } = self;
        drop(tx);
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        let mut died = BTreeSet::new();
        let first = loop {
            let msg = match deadline {
                Some((at, limit)) => {
                    match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(msg) => Some(msg),
                        Err(mpsc::RecvTimeoutError::Timeout) => break First::Timeout(limit),
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                }
                None => rx.recv().ok(),
            };
            match msg {
                Some(Msg::Ended(id, end)) => break First::Ended(id, end),
                Some(Msg::Stop) => break First::Stopped,
                Some(Msg::Quit) => break First::Quit,
                Some(Msg::Died(id)) => {
                    died.insert(id);
                    if died.len() == threads.len() {
                        break First::AllDied;
                    }
                }
                // Every sender is gone: every thread has accounted for
                // itself and no stopper is left.
                None => break First::AllDied,
            }
        };
        let mut reported = died;
        if let First::Ended(id, _) = &first {
            reported.insert(*id);
        }
        let others = stop_all(&stop, &threads, &rx, reported);
        // vCPU 0 (or the first to answer) reports where it was stopped.
        let stopped_regs = || {
            others
                .iter()
                .find(|(id, _)| *id == 0)
                .into_iter()
                .chain(&others)
                .find_map(|(_, end)| end.regs().copied())
        };
        let (end, by) = match first {
            First::Ended(id, end) => (*end, Some(id)),
            First::Timeout(after) => (
                VmEnd::Timeout {
                    after,
                    regs: stopped_regs(),
                },
                None,
            ),
            First::Stopped => (
                VmEnd::Destroyed {
                    regs: stopped_regs(),
                },
                None,
            ),
            First::Quit => (VmEnd::Quit, None),
            // Every thread ended without reporting: they panicked.
            First::AllDied => (
                VmEnd::Unhandled {
                    exit: "vCPU thread panicked".into(),
                    regs: None,
                },
                None,
            ),
        };
        // A thread that reported only has its stats left to return: join it.
        // One that neither reported nor finished within the grace is left.
        let done: BTreeSet<u8> = by
            .into_iter()
            .chain(others.iter().map(|(id, _)| *id))
            .collect();
        let stats = threads
            .into_iter()
            .filter(|(id, h)| done.contains(id) || h.is_finished())
            .filter_map(|(id, h)| h.join().ok().map(|s| (id, s)))
            .collect();
        RunReport { end, by, stats }
    }
}

/// Raises `stop` and kicks every thread that has neither reported (ids in
/// `reported`, or a report arriving on `rx`) nor finished, waiting for
/// reports between kicks, for at most [`STOP_GRACE`]. Returns the reports
/// that arrived. Threads that have reported are not kicked: they are on
/// their way out and a join takes them.
fn stop_all<T>(
    stop: &AtomicBool,
    threads: &[(u8, JoinHandle<T>)],
    rx: &mpsc::Receiver<Msg>,
    mut reported: BTreeSet<u8>,
) -> Vec<(u8, VmEnd)> {
    stop.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + STOP_GRACE;
    let mut reports = Vec::new();
    let take = |msg: Msg, reported: &mut BTreeSet<u8>, reports: &mut Vec<(u8, VmEnd)>| match msg {
        Msg::Ended(id, end) => {
            reported.insert(id);
            reports.push((id, *end));
        }
        Msg::Died(id) => {
            reported.insert(id);
        }
        Msg::Stop | Msg::Quit => {}
    };
    loop {
        for msg in rx.try_iter() {
            take(msg, &mut reported, &mut reports);
        }
        let mut running = false;
        for (_, h) in threads
            .iter()
            .filter(|(id, h)| !reported.contains(id) && !h.is_finished())
        {
            running = true;
            // A failed kill means the thread is already gone.
            let _ = h.kill(kick_signal());
        }
        let now = Instant::now();
        if !running || now >= deadline {
            return reports;
        }
        // Wake up as soon as a kicked thread reports, else kick again.
        match rx.recv_timeout(KICK_INTERVAL.min(deadline - now)) {
            Ok(msg) => take(msg, &mut reported, &mut reports),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender is gone: every thread has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => return reports,
        }
    }
}
