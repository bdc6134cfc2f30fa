//! `scripts/dmesg-diff.sh`, the reader of the nested benchmark's timeline
//! pass, on a made-up pair of kernel logs: it must match lines whose
//! numbers differ, put the stretch that differs most first, and escape
//! what the guests printed.

use std::path::Path;
use std::process::Command;

#[test]
fn dmesg_diff_finds_the_stretch_that_differs_most() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("pvh-dmesg-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("console.log");
    std::fs::write(
        &log,
        "TL a [    0.000000] Linux version 6.1\n\
         TL a [    0.001000] tsc: Detected 2596.128 MHz processor\n\
         TL a [    0.005000] x86/PAT: Configuration\n\
         TL a [    0.042000] Using GB pages for direct mapping\n\
         TL a [    1.000000] Run /init as init process \x1b[31m\n\
         TL b [    0.000000] Linux version 6.1\n\
         TL b [    0.001000] tsc: Detected 2100.000 MHz processor\n\
         TL b [    0.005000] x86/PAT: Configuration\n\
         TL b [    0.006000] found SMP MP-table at [mem 0x0009fc00-0x0009fc0f]\n\
         TL b [    0.007000] Using GB pages for direct mapping\n\
         TL b [    0.990000] Run /init as init process \x1b[31m\n\
         BENCH a 1 status=killed\n",
    )
    .unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/dmesg-diff.sh"))
        .args(["a", "b"])
        .arg(&log)
        .arg("2")
        .output()
        .expect("run dmesg-diff.sh");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The MHz differ, the line still matches; b's MP-table line has no
    // partner in a.
    assert_eq!(lines[0], "5 of 5 (a) and 6 (b) lines matched", "{stdout}");
    // a: 37 ms from PAT to GB pages, b: 2 ms: +35 ms, the largest.
    let first: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&first[..3], ["35.0", "37.0", "2.0"], "{stdout}");
    assert!(
        lines[2].contains("x86/PAT: Configuration -> Using GB pages"),
        "{stdout}"
    );
    assert_eq!(
        lines.len(),
        5,
        "TOP = 2 stretches, then the last line: {stdout}"
    );
    assert!(!stdout.contains('\x1b'), "guest text is escaped: {stdout}");
    assert_eq!(lines[4], "last line: a 1.000 s, b 0.990 s");
}
