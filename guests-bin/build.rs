//! Hands the guest images to the crate through `PVH_<NAME>_PATH`
//! environment variables, from one of two places:
//!
//! - in the pvh repository (`../guests/Cargo.toml` exists): builds the
//!   `guests/` workspace (a separate workspace: its target is
//!   `x86_64-unknown-none` and it has its own flags in
//!   `guests/.cargo/config.toml`) with `cargo build --release`, into a
//!   target directory under `OUT_DIR`, with the checkout's and cargo's
//!   home paths remapped out of the images (panic messages);
//! - in the published crate (no `../guests`), or with
//!   `PVH_GUESTS_PREBUILT=1`: the images shipped in `prebuilt/`, built
//!   from the same sources by this script, run by
//!   `scripts/update-guests.sh` at a fixed path with the toolchain named in
//!   `prebuilt/TOOLCHAIN`. So `cargo install pvh-hypervisor`
//!   needs neither the guest target nor a nested cargo build; the test
//!   `prebuilt_guests_are_the_sources_rebuilt` holds the bytes to the
//!   sources.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest target.
const TARGET: &str = "x86_64-unknown-none";
/// Guest binaries to export: (binary name, env var for its path).
const GUESTS: &[(&str, &str)] = &[
    ("pvh-probe", "PVH_PROBE_PATH"),
    ("pvh-stub", "PVH_STUB_PATH"),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rustc-check-cfg=cfg(pvh_guests_from_source)");
    println!("cargo:rerun-if-env-changed=PVH_GUESTS_PREBUILT");
    let root = manifest
        .parent()
        .expect("guests-bin lives in the workspace root");
    let guests = root.join("guests");
    let prebuilt = env::var_os("PVH_GUESTS_PREBUILT").is_some_and(|v| v == "1");
    if prebuilt || !guests.join("Cargo.toml").is_file() {
        for (bin, var) in GUESTS {
            let path = manifest.join("prebuilt").join(bin);
            println!("cargo:rerun-if-changed={}", path.display());
            println!("cargo:rustc-env={var}={}", path.display());
        }
        return;
    }
    println!("cargo:rustc-cfg=pvh_guests_from_source");
    for p in [
        "guests/Cargo.toml",
        "guests/Cargo.lock",
        "guests/pvh.ld",
        "guests/.cargo/config.toml",
        "guests/probe",
        "guests/stub",
        "entry/Cargo.toml",
        "entry/src",
        "bootparams/Cargo.toml",
        "bootparams/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    check_target(&rustc);

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out.join("guests-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    // Cargo finds guests/.cargo/config.toml from the current directory.
    // Only the guests this crate exports (package = binary name): a guest
    // under construction elsewhere in guests/ does not break this build.
    cmd.current_dir(&guests)
        .args(["build", "--release", "--target-dir"])
        .arg(&target_dir);
    // Paths the images would otherwise carry (panic locations): the
    // checkout and cargo's home. Joined to guests/.cargo/config.toml's
    // rustflags (cargo joins arrays from --config and config files).
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut remaps = vec![format!("{}=/pvh", root.display())];
    if let Some(home) = cargo_home {
        remaps.push(format!("{}=/cargo", home.display()));
    }
    let flags: Vec<String> = remaps
        .iter()
        .map(|r| format!("\"--remap-path-prefix={r}\""))
        .collect();
    cmd.arg("--config")
        .arg(format!("target.{TARGET}.rustflags=[{}]", flags.join(", ")));
    for (bin, _) in GUESTS {
        cmd.args(["-p", bin]);
    }
    // The outer build's settings must not leak in: its target directory,
    // flags (meant for the host target), wrappers (clippy's driver) and
    // profile or target overrides.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = matches!(
            key,
            "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "CARGO_BUILD_RUSTFLAGS"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTFLAGS"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_BUILD_RUSTC_WRAPPER"
                | "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER"
                | "CLIPPY_ARGS"
                | "CLIPPY_CONF_DIR"
        ) || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_TARGET_")
            || key.starts_with("__CARGO");
        if leaks {
            cmd.env_remove(key);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("pvh-guests: cannot run cargo for guests/: {e}"));
    if !output.status.success() {
        panic!(
            "pvh-guests: building guests/ for {TARGET} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (bin, var) in GUESTS {
        let built = target_dir.join(TARGET).join("release").join(bin);
        // A copy outside the nested target directory: a stable path that a
        // later guests build does not rewrite while a test reads it.
        let copy = out.join(bin);
        std::fs::copy(&built, &copy)
            .unwrap_or_else(|e| panic!("pvh-guests: copying {}: {e}", built.display()));
        println!("cargo:rustc-env={var}={}", copy.display());
    }
}

/// Fails with an instruction if the guest target's standard library is
/// not installed.
fn check_target(rustc: &OsString) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_deref()
        .map(|s| s.join("lib/rustlib").join(TARGET).join("lib"))
        .is_some_and(|p| Path::new(&p).is_dir());
    if !installed {
        panic!(
            "pvh-guests: the Rust target {TARGET} is not installed (needed to build the \
             guests in guests/): run scripts/setup.sh (or `rustup target add {TARGET}`)"
        );
    }
}
