//! Issue 14's hostile inputs, each made at test time (nothing big is
//! committed: sparse files take no space, FIFOs and devices none): every
//! one ends with its typed exit status and message, never a panic, and
//! never by reading without bound. `scripts/bench-rss.sh` measures the
//! peak RSS of the same cases.

mod common;
mod hostile;

use std::time::Duration;

use common::{Asm, pvh_elf, run_pvh};

#[test]
fn every_hostile_input_gets_its_typed_verdict() {
    let dir = std::env::temp_dir().join(format!("pvh-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = pvh_elf(Asm::new().exit(0).bytes());
    let cases = hostile::cases(&dir, &kernel, 3, 8);
    let mut failures = Vec::new();
    for case in cases {
        if let Some(fifo) = &case.fifo {
            hostile::feed(fifo.clone());
        }
        let run = run_pvh(&case.args, Duration::from_secs(300));
        let ok = run.status == i32::from(case.status)
            && run.stderr.contains(&case.message)
            && !run.stderr.contains("panicked");
        if !ok {
            failures.push(format!(
                "{}: status {} (want {}), stderr {:?} (want {:?})",
                case.name, run.status, case.status, run.stderr, case.message
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A long piped input is spooled to a temporary file (constant memory);
/// when `$TMPDIR` cannot hold it, that is the host's failure, not the
/// input's: status 70 and a message naming both.
#[test]
fn a_piped_input_that_cannot_be_spooled_is_a_host_failure() {
    let dir = std::env::temp_dir().join(format!("pvh-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, pvh_elf(Asm::new().exit(0).bytes())).unwrap();
    let fifo = hostile::mkfifo(&dir.join("initrd.fifo"));
    hostile::feed(fifo.clone());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pvh"))
        .env("TMPDIR", "/nonexistent-pvh-tmp")
        .args(["boot", "--plan", "--memory", "64M", "--kernel"])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&fifo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert!(
        stderr.contains("--initrd: cannot hold ")
            && stderr.contains("initrd.fifo in a temporary file in /nonexistent-pvh-tmp: "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
