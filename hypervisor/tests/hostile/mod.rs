//! The hostile inputs of issue 14 as fixtures made at run time (sparse
//! files, FIFOs, devices, decompression bombs, a huge tree, many modules),
//! each with the exit status and the message `pvh` must answer with.
//! Shared by `tests/hostile_inputs.rs` (asserts the verdicts) and
//! `examples/hostile_inputs.rs` (lists them for `scripts/bench-rss.sh`,
//! which measures peak RSS per case).

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use pvh_bootparams::synth::SynthBzImage;

/// Guest RAM of every `boot` case: 64 MiB.
pub const MEMORY: &str = "64M";
/// [`MEMORY`] in bytes.
pub const MEMORY_BYTES: u64 = 64 << 20;

/// One hostile input and the verdict it must get.
pub struct Case {
    /// Short name (the benchmark's row).
    pub name: &'static str,
    /// `pvh`'s arguments.
    pub args: Vec<OsString>,
    /// The exit status.
    pub status: u8,
    /// Text the message on stderr must contain.
    pub message: String,
    /// A FIFO the caller must feed without end while `pvh` runs.
    pub fifo: Option<PathBuf>,
    /// What bounds `pvh`'s memory in this case.
    pub bound: &'static str,
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn boot(extra: &[OsString]) -> Vec<OsString> {
    let mut v = vec![os("boot"), os("--plan"), os("--memory"), os(MEMORY)];
    v.extend_from_slice(extra);
    v
}

/// A file of `size` bytes that takes no disk space.
fn sparse(path: &Path, size: u64) -> PathBuf {
    let f = std::fs::File::create(path).expect("create sparse file");
    f.set_len(size).expect("size sparse file");
    path.to_path_buf()
}

/// Makes a FIFO at `path` (with mkfifo(1)) and returns the path.
pub fn mkfifo(path: &Path) -> PathBuf {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
    path.to_path_buf()
}

/// A bzImage whose payload is `stream` with `announced` as its size.
fn bzimage(stream: Vec<u8>, announced: u32) -> Vec<u8> {
    let mut payload = stream;
    payload.extend_from_slice(&announced.to_le_bytes());
    SynthBzImage::default().payload(payload).build()
}

/// `mib` MiB of zeros, compressed as `format`.
fn bomb(format: &str, mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    match format {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for _ in 0..mib {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 0);
            for _ in 0..mib {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        }
        "zstd" => {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
            for _ in 0..mib {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        }
        other => panic!("no bomb in {other}"),
    }
}

/// Writes the fixtures under `dir` and returns the cases. Sparse files
/// are `sparse_gib` GiB; decompression bombs hold `bomb_mib` MiB of zeros
/// and announce 1 MiB.
pub fn cases(dir: &Path, kernel: &[u8], sparse_gib: u64, bomb_mib: usize) -> Vec<Case> {
    let big = sparse_gib << 30;
    let kernel_path = dir.join("kernel.elf");
    std::fs::write(&kernel_path, kernel).unwrap();
    let k = || [os("--kernel"), kernel_path.clone().into()];
    let small = dir.join("module");
    std::fs::write(&small, b"module").unwrap();
    let big_file = sparse(&dir.join("sparse"), big);
    let over_ram = |opt: &str, path: &Path, exact: bool| {
        let size = if exact {
            format!("{big} bytes")
        } else {
            "at least".to_string()
        };
        format!("{opt}: {} is {size}", path.display())
    };
    let mut v = Vec::new();
    v.push(Case {
        name: "sparse file as kernel",
        args: boot(&[os("--kernel"), big_file.clone().into()]),
        status: 66,
        message: over_ram("--kernel", &big_file, true),
        fifo: None,
        bound: "refused by size (stat), nothing read",
    });
    v.push(Case {
        name: "sparse file as initrd",
        args: boot(&[
            k()[0].clone(),
            k()[1].clone(),
            os("--initrd"),
            big_file.clone().into(),
        ]),
        status: 66,
        message: over_ram("--initrd", &big_file, true),
        fifo: None,
        bound: "refused by size (stat), nothing read",
    });
    for (opt, name) in [
        ("--kernel", "/dev/zero as kernel"),
        ("--initrd", "/dev/zero as initrd"),
        ("--module", "/dev/zero as module"),
    ] {
        let mut a = if opt == "--kernel" {
            vec![]
        } else {
            k().to_vec()
        };
        a.extend([os(opt), os("/dev/zero")]);
        v.push(Case {
            name,
            args: boot(&a),
            status: 66,
            message: over_ram(opt, Path::new("/dev/zero"), false),
            fifo: None,
            bound: "spooled to guest RAM + 1 byte",
        });
    }
    for (opt, name) in [
        ("--kernel", "FIFO as kernel"),
        ("--initrd", "FIFO as initrd"),
        ("--module", "FIFO as module"),
    ] {
        let fifo = mkfifo(&dir.join(format!("fifo{}", opt.trim_start_matches('-'))));
        let mut a = if opt == "--kernel" {
            vec![]
        } else {
            k().to_vec()
        };
        a.extend([os(opt), fifo.clone().into()]);
        v.push(Case {
            name,
            args: boot(&a),
            status: 66,
            message: over_ram(opt, &fifo, false),
            fifo: Some(fifo),
            bound: "spooled to guest RAM + 1 byte",
        });
    }

    // launch reads its modules against what the host may give.
    let tree = dir.join("small.dtb");
    std::fs::write(&tree, b"any tree").unwrap();
    v.push(Case {
        name: "/dev/zero as module (launch)",
        args: vec![
            os("launch"),
            os("--plan"),
            os("--host-memory"),
            os(MEMORY),
            os("--module"),
            os("/dev/zero"),
            tree.into(),
        ],
        status: 66,
        message: "--module 0: /dev/zero is at least 67108865 bytes (64.0 MiB), more than the \
                  67108864 bytes (64.0 MiB) of memory the host may give its guests"
            .into(),
        fifo: None,
        bound: "spooled to --host-memory + 1 byte",
    });

    // pvh-unpack: an announcement above the guest's RAM, and bombs.
    let announces_1g = dir.join("bzimage-announces-1g");
    // It holds what it announces up to `bomb_mib` MiB: before the guest's
    // RAM bounded decompression, all of that was decoded (into a doubling
    // buffer).
    std::fs::write(&announces_1g, bzimage(bomb("gzip", bomb_mib), 1 << 30)).unwrap();
    let unpack = |path: &Path| {
        boot(&[
            os("--boot-protocol"),
            os("pvh-unpack"),
            os("--no-unpack-cache"),
            os("--kernel"),
            path.into(),
        ])
    };
    v.push(Case {
        name: "bzImage announcing 1 GiB (pvh-unpack)",
        args: unpack(&announces_1g),
        status: 66,
        message: "the payload announces 0x40000000 bytes decompressed, more than the guest's \
                  0x4000000 bytes of RAM; nothing was decompressed"
            .into(),
        fifo: None,
        bound: "refused before decoding",
    });
    for format in ["gzip", "xz", "zstd"] {
        let path = dir.join(format!("bomb-{format}"));
        std::fs::write(&path, bzimage(bomb(format, bomb_mib), 1 << 20)).unwrap();
        v.push(Case {
            name: match format {
                "gzip" => "gzip bomb (pvh-unpack)",
                "xz" => "xz bomb (pvh-unpack)",
                _ => "zstd bomb (pvh-unpack)",
            },
            args: unpack(&path),
            status: 66,
            message: "decompressed payload exceeds 0x100000 bytes".into(),
            fifo: None,
            bound: "decoded to the announced size (1 MiB) + 1 byte",
        });
    }

    // A huge device tree, and one that never ends.
    let tree = sparse(&dir.join("huge.dtb"), 64 << 20);
    v.push(Case {
        name: "huge device tree (launch)",
        args: vec![os("launch"), os("--plan"), tree.clone().into()],
        status: 66,
        message: format!(
            "{} is 67108864 bytes (64.0 MiB), more than the 16777216 bytes (16.0 MiB) a boot \
             device tree may have",
            tree.display()
        ),
        fifo: None,
        bound: "refused by size (stat), nothing read",
    });
    v.push(Case {
        name: "/dev/zero as device tree (launch)",
        args: vec![os("launch"), os("--plan"), os("/dev/zero")],
        status: 66,
        message: "/dev/zero is at least 16777217 bytes (16.0 MiB), more than the 16777216 bytes"
            .into(),
        fifo: None,
        bound: "spooled to 16 MiB + 1 byte",
    });

    // Writer and reader share the start_info limits.
    let mut many = k().to_vec();
    for _ in 0..4097 {
        many.extend([os("--module"), small.clone().into()]);
    }
    v.push(Case {
        name: "4097 modules",
        args: boot(&many),
        status: 66,
        message: "the module count is 4097, more than the 4096 the start_info reader accepts"
            .into(),
        fifo: None,
        bound: "one small read per module",
    });
    let mut long = k().to_vec();
    long.extend([os("--cmdline"), os("x".repeat(64 << 10))]);
    v.push(Case {
        name: "64 KiB command line",
        args: boot(&long),
        status: 66,
        message: "the length of the command line (with its NUL) is 65537, more than the 65536 \
                  the start_info reader accepts"
            .into(),
        fifo: None,
        bound: "-",
    });

    // wrap and inspect.
    let huge = sparse(&dir.join("sparse5g"), 5 << 30);
    let image_limit = format!(
        "{} is 5368709120 bytes (5.0 GiB), more than the 4294967296 bytes (4.0 GiB) an input \
         of pvh wrap or inspect may have",
        huge.display()
    );
    v.push(Case {
        name: "sparse 5 GiB bzImage (wrap)",
        args: vec![
            os("wrap"),
            huge.clone().into(),
            os("-o"),
            dir.join("wrapped").into(),
        ],
        status: 66,
        message: image_limit.clone(),
        fifo: None,
        bound: "refused by size (stat), nothing read",
    });
    v.push(Case {
        name: "sparse 5 GiB image (inspect)",
        args: vec![os("inspect"), huge.into()],
        status: 66,
        message: image_limit,
        fifo: None,
        bound: "refused by size (stat), nothing read",
    });
    v
}

/// Feeds `fifo` zeros until its reader goes away (or forever, if none
/// ever comes: the thread is detached).
pub fn feed(fifo: PathBuf) {
    std::thread::spawn(move || {
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
            return;
        };
        let zeros = vec![0u8; 1 << 16];
        while f.write_all(&zeros).is_ok() {}
    });
}
