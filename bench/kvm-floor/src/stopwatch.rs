//! Timing a command from spawn to exit, and to the first output line that
//! contains each of some markers, with a monotonic clock: for machines
//! whose shell has no sub-second clock (busybox `date` has no `%N`), such
//! as the L1 guest of the nested benchmark in `scripts/bench-boot.sh`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
}

/// Runs `cmd`, copying its standard output line by line to `out` (carriage
/// returns removed) and noting when each of `markers` first appears.
pub fn time_command(
    cmd: &mut Command,
    markers: &[String],
    out: &mut dyn Write,
) -> std::io::Result<Timing> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut seen: Vec<(String, Option<Duration>)> =
        markers.iter().map(|m| (m.clone(), None)).collect();
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
        }
    }
    let status = child.wait()?;
    Ok(Timing {
        status,
        total: start.elapsed(),
        markers: seen,
    })
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
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let err =
            time_command(&mut Command::new("/nonexistent/prog"), &[], &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
