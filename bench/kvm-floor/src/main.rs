//! `kvm-floor`: the boot benchmark's floor and its helpers.
//!
//! - `kvm-floor [--memory MIB] [--no-pit] [--no-irqchip] [--pause-ms MS] [--verbose]`: run
//!   the floor VM (see `pvh_kvm_floor::floor`; by default with what `pvh`
//!   creates: irqchip, PIT, 512 MiB); the exit status is the value the
//!   guest wrote to the exit port (0). `--verbose` prints the time of the
//!   setup, run and teardown phases; `--pause-ms` sleeps between the exit
//!   and the teardown (an experiment on KVM's teardown cost).
//! - `kvm-floor write-elf PATH`: write the same guest as a PVH ELF.
//! - `kvm-floor probe-path`: print where the built-in probe ELF is (for
//!   QEMU's `-kernel`).
//! - `kvm-floor stopwatch [--marker TEXT]... [--kill-at TEXT] [--timeout SECS] -- CMD [ARG]...`:
//!   run CMD, pass its output through, then print one line
//!   `stopwatch status=S total_us=N [TEXT_us=M|TEXT_us=none]... maxrss_kib=K
//!   minflt=F utime_us=U stime_us=S [rss_kib=R thp_kib=H]` (peak RSS, minor
//!   faults and CPU time from `getrusage(RUSAGE_CHILDREN)`). With `--kill-at`, CMD is killed (status
//!   `killed`) once a line containing TEXT appears, after a snapshot of its
//!   resident and huge-page backed memory (`rss_kib`, `thp_kib`); with
//!   `--timeout`, killed (status `timeout`) if still running after SECS.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use pvh_kvm_floor::{FloorConfig, guest, run};

/// `pvh boot`'s default guest RAM.
const DEFAULT_MEMORY_MIB: u64 = 512;

fn usage() -> ExitCode {
    eprintln!(
        "usage: kvm-floor [--memory MIB] [--no-pit] [--no-irqchip] [--pause-ms MS] [--verbose]\n       kvm-floor write-elf PATH\n       kvm-floor probe-path\n       kvm-floor stopwatch [--marker TEXT]... [--kill-at TEXT] [--timeout SECS] -- CMD [ARG]..."
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write-elf") => {
            let [_, path] = args.as_slice() else {
                return usage();
            };
            match std::fs::write(path, guest::pvh_elf()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kvm-floor: writing {path}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("stopwatch") => stopwatch(&args[1..]),
        Some("probe-path") => {
            println!("{}", pvh_guests::probe_path().display());
            ExitCode::SUCCESS
        }
        _ => {
            let mut memory = DEFAULT_MEMORY_MIB;
            let mut verbose = false;
            let (mut irqchip, mut pit) = (true, true);
            let mut pause = Duration::ZERO;
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--verbose" | "-v" => verbose = true,
                    "--no-pit" => pit = false,
                    "--pause-ms" => match it.next().and_then(|m| m.parse::<u64>().ok()) {
                        Some(ms) => pause = Duration::from_millis(ms),
                        None => return usage(),
                    },
                    "--no-irqchip" => (irqchip, pit) = (false, false),
                    "--memory" => match it.next().and_then(|m| m.parse::<u64>().ok()) {
                        Some(m) => memory = m,
                        None => return usage(),
                    },
                    _ => return usage(),
                }
            }
            let Some(bytes) = memory.checked_mul(1 << 20) else {
                return usage();
            };
            let config = FloorConfig {
                irqchip,
                pit,
                pause_before_teardown: pause,
                ..FloorConfig::like_pvh(bytes)
            };
            match run(Path::new("/dev/kvm"), config) {
                Ok(report) => {
                    if verbose {
                        eprintln!(
                            "kvm-floor: exit value {}, setup {:?}, run {:?}, teardown {:?}",
                            report.exit_value, report.setup, report.run, report.teardown
                        );
                    }
                    ExitCode::from(u8::try_from(report.exit_value).unwrap_or(u8::MAX))
                }
                Err(e) => {
                    eprintln!("kvm-floor: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn stopwatch(args: &[String]) -> ExitCode {
    let mut opts = pvh_kvm_floor::stopwatch::Options::default();
    let mut it = args.iter();
    loop {
        match it.next().map(String::as_str) {
            Some("--marker") => match it.next() {
                Some(m) => opts.markers.push(m.clone()),
                None => return usage(),
            },
            Some("--kill-at") => match it.next() {
                Some(m) => opts.kill_at = Some(m.clone()),
                None => return usage(),
            },
            Some("--timeout") => match it.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(secs) => opts.timeout = Some(Duration::from_secs(secs)),
                None => return usage(),
            },
            Some("--") => break,
            _ => return usage(),
        }
    }
    let Some(program) = it.next() else {
        return usage();
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(it);
    let mut stdout = std::io::stdout().lock();
    match pvh_kvm_floor::stopwatch::time_command_with(&mut cmd, &opts, &mut stdout) {
        Ok(t) => {
            let status = match (t.timed_out, t.killed, t.status.code()) {
                (true, _, _) => "timeout".to_owned(),
                (false, true, _) => "killed".to_owned(),
                (false, false, Some(c)) => c.to_string(),
                (false, false, None) => format!("{}", t.status).replace(' ', "_"),
            };
            let mut line = format!("stopwatch status={status} total_us={}", t.total.as_micros());
            for (marker, at) in &t.markers {
                match at {
                    Some(d) => line.push_str(&format!(" {marker}_us={}", d.as_micros())),
                    None => line.push_str(&format!(" {marker}_us=none")),
                }
            }
            if let Some(u) = t.usage {
                line.push_str(&format!(
                    " maxrss_kib={} minflt={} utime_us={} stime_us={}",
                    u.max_rss_kib, u.minor_faults, u.user_us, u.system_us
                ));
            }
            if let Some(s) = t.snapshot {
                line.push_str(&format!(
                    " rss_kib={} thp_kib={}",
                    s.rss_kib, s.anon_huge_kib
                ));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvm-floor: stopwatch: running {program}: {e}");
            ExitCode::FAILURE
        }
    }
}
