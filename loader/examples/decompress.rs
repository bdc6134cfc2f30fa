//! Times the loader's decoder on one bzImage payload (the compressed stream
//! followed by the le32 uncompressed size, as Linux builds it): what
//! `scripts/bench-unpack.sh` compares with the C tools.
//!
//! `cargo run --release -p pvh-loader --example decompress -- gzip|xz|lzma|zstd FILE [RUNS]`
//!
//! Prints `decompress FORMAT in=BYTES out=BYTES best_ms=T median_ms=M`
//! over RUNS runs (default 5), each decompressing into a fresh buffer, as
//! pvh-unpack does.

use std::process::ExitCode;
use std::time::Instant;

use pvh_loader::image::{Compression, decompress};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(format), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: decompress gzip|xz|lzma|zstd FILE [RUNS]");
        return ExitCode::from(2);
    };
    let compression = match format.as_str() {
        "gzip" => Compression::Gzip,
        "xz" => Compression::Xz,
        "lzma" => Compression::Lzma,
        "zstd" => Compression::Zstd,
        other => {
            eprintln!("decompress: unknown format {other:?}");
            return ExitCode::from(2);
        }
    };
    let runs: usize = match args.get(2).map(|r| r.parse()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("decompress: RUNS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let payload = match std::fs::read(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("decompress: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut times = Vec::with_capacity(runs);
    let mut out_len = 0;
    for _ in 0..runs {
        let t = Instant::now();
        match decompress(compression, &payload) {
            Ok(out) => out_len = out.len(),
            Err(e) => {
                eprintln!("decompress: {e}");
                return ExitCode::FAILURE;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "decompress {format} in={} out={out_len} best_ms={:.1} median_ms={:.1}",
        payload.len(),
        times[0],
        times[times.len() / 2]
    );
    ExitCode::SUCCESS
}
