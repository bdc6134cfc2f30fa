//! Runs a VM's vCPUs, one host thread each, until the first vCPU ends the
//! VM or the timeout expires; then stops the others.
//!
//! A vCPU blocked in KVM_RUN (guest spinning or halted with interrupts off)
//! only comes back when a signal interrupts the ioctl, so stopping is: raise
//! the shared `stop` flag, then send [`kick_signal`] to every vCPU thread
//! until it has returned. The handler does nothing; its only effect is the
//! EINTR. Kicks repeat because one sent just before a thread re-enters
//! KVM_RUN is lost. A thread that has reported its end is past KVM_RUN for
//! good: it is joined without kicks or waiting, so a one-vCPU run ends
//! without any sleep.

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

/// Runs `vcpus` (boot state already set) until one ends the VM, or until
/// `timeout`.
pub fn run(vcpus: Vec<Vcpu>, timeout: Option<Duration>) -> Result<RunReport, Error> {
    install_kick_handler()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(u8, VmEnd)>();
    let mut threads: Vec<(u8, JoinHandle<VcpuStats>)> = Vec::new();
    for mut vcpu in vcpus {
        let id = vcpu.id();
        let thread_stop = Arc::clone(&stop);
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                let end = vcpu.run(&thread_stop);
                // The receiver only goes away once the run is over.
                let _ = tx.send((id, end));
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
    drop(tx);

    let first = match timeout {
        Some(limit) => rx.recv_timeout(limit).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Some(limit),
            mpsc::RecvTimeoutError::Disconnected => None,
        }),
        None => rx.recv().map_err(|_| None),
    };
    let reported: BTreeSet<u8> = first.as_ref().map(|(id, _)| *id).into_iter().collect();
    let others = stop_all(&stop, &threads, &rx, reported);
    let (end, by) = match first {
        Ok((id, end)) => (end, Some(id)),
        Err(Some(after)) => {
            // vCPU 0 (or the first to answer) reports where it was stopped.
            let regs = others
                .iter()
                .find(|(id, _)| *id == 0)
                .into_iter()
                .chain(&others)
                .find_map(|(_, end)| end.regs().copied());
            (VmEnd::Timeout { after, regs }, None)
        }
        // Every thread ended without reporting: they panicked.
        Err(None) => (
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
    Ok(RunReport { end, by, stats })
}

/// Raises `stop` and kicks every thread that has neither reported (ids in
/// `reported`, or a report arriving on `rx`) nor finished, waiting for
/// reports between kicks, for at most [`STOP_GRACE`]. Returns the reports
/// that arrived. Threads that have reported are not kicked: they are on
/// their way out and a join takes them.
fn stop_all<T>(
    stop: &AtomicBool,
    threads: &[(u8, JoinHandle<T>)],
    rx: &mpsc::Receiver<(u8, VmEnd)>,
    mut reported: BTreeSet<u8>,
) -> Vec<(u8, VmEnd)> {
    stop.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + STOP_GRACE;
    let mut reports = Vec::new();
    loop {
        for report in rx.try_iter() {
            reported.insert(report.0);
            reports.push(report);
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
            Ok(report) => {
                reported.insert(report.0);
                reports.push(report);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender is gone: every thread has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => return reports,
        }
    }
}
