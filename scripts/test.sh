#!/usr/bin/env bash
# test.sh - the whole pvh test suite from a fresh machine, in one command.
#
# Installs what the tests need (Debian packages, the x86_64-unknown-none
# target: scripts/setup.sh), fetches the real guests they boot (Debian's
# kernel and Xen: scripts/fetch-artifacts.sh), then holds the tree to the
# project's standards: rustfmt, clippy with warnings as errors, rustdoc with
# warnings as errors, and every test in the workspace; then, with nightly,
# the no_std crates under Miri and a short pass of every fuzz target.
# `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/fetch-artifacts.sh

echo "test: cargo fmt --check"
cargo fmt --all -- --check
(cd guests && cargo fmt --all -- --check)
echo "test: the library crates link no hypervisor, CLI, device model or guest (scripts/check-deps.sh)"
bash scripts/check-deps.sh
echo "test: cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The guests are their own workspace for x86_64-unknown-none (its
# .cargo/config.toml applies from inside guests/ only).
(cd guests && CARGO_TARGET_DIR=../target/guests-clippy cargo clippy --release -- -D warnings)
echo "test: cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
echo "test: fuzz targets type-check on stable"
cargo check --manifest-path fuzz/Cargo.toml --bins
cargo check --manifest-path loader/fuzz/Cargo.toml --bins
# The no_std crates build for a bare-metal target (what a guest links).
echo "test: no_std crates for x86_64-unknown-none"
cargo build --target x86_64-unknown-none -p pvh-bootparams -p pvh-entry
echo "test: published crates at their rust-version, packaging, cargo install of pvh from the packages (scripts/check-package.sh)"
bash scripts/check-package.sh
echo "test: cargo test (includes the fuzz corpora, replayed: tests/tests/fuzz_corpus.rs)"
cargo test --workspace
# Every case of the nested side-by-side benchmark boots (pvh, Firecracker,
# Cloud Hypervisor and QEMU in one L1; one run each, no timing claims).
# Every hostile input of issue 14 (sparse files, FIFOs, /dev/zero, bombs,
# huge trees, too many modules) ends with its typed status and message.
echo "test: scripts/bench-rss.sh --short"
bash scripts/bench-rss.sh --short
echo "test: scripts/bench-nested.sh --short"
bash scripts/bench-nested.sh --short

# Nightly-only passes: the no_std crates under Miri, and every fuzz target
# for a few seconds (libFuzzer + ASan). Skipped, saying so, only where a
# nightly toolchain cannot be installed.
if rustup toolchain list | grep -q '^nightly' ||
    rustup toolchain install nightly --profile minimal; then
    echo "test: Miri (scripts/miri.sh)"
    bash scripts/miri.sh
    echo "test: short fuzz pass (scripts/fuzz.sh --time ${PVH_FUZZ_SECONDS:-8})"
    bash scripts/fuzz.sh --time "${PVH_FUZZ_SECONDS:-8}"
else
    echo "test: skipped: no nightly toolchain can be installed here (Miri, fuzz pass)"
fi
