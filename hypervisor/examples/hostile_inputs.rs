//! Writes issue 14's hostile inputs (`tests/hostile/`) under a directory
//! and lists them for `scripts/bench-rss.sh`: one line per case on stdout,
//! `N<TAB>status<TAB>fifo or -<TAB>name<TAB>bound<TAB>message`, and the
//! case's `pvh` arguments in `DIR/case-N.args`, NUL-separated.
//!
//! `cargo run -p pvh-hypervisor --example hostile_inputs -- DIR [SPARSE_GIB [BOMB_MIB]]`

#[path = "../tests/hostile/mod.rs"]
mod hostile;

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: hostile_inputs DIR [SPARSE_GIB [BOMB_MIB]]"),
    );
    let sparse_gib = args.next().map_or(3, |a| a.parse().expect("SPARSE_GIB"));
    let bomb_mib = args.next().map_or(64, |a| a.parse().expect("BOMB_MIB"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    let kernel = pvh_hypervisor::probe::PROBE.expect("the built-in probe guest");
    let mut out = std::io::stdout().lock();
    for (i, case) in hostile::cases(&dir, kernel, sparse_gib, bomb_mib)
        .into_iter()
        .enumerate()
    {
        let mut argv = Vec::new();
        for a in &case.args {
            argv.extend_from_slice(a.as_bytes());
            argv.push(0);
        }
        std::fs::write(dir.join(format!("case-{i}.args")), argv).expect("write args");
        let fifo = case
            .fifo
            .as_ref()
            .map_or("-".to_string(), |f| f.display().to_string());
        writeln!(
            out,
            "{i}\t{}\t{fifo}\t{}\t{}\t{}",
            case.status, case.name, case.bound, case.message
        )
        .expect("write stdout");
    }
}
