#!/usr/bin/env bash
# miri.sh - the no_std crates' tests (pvh-bootparams, pvh-entry with its
# host-testable runtime logic) under Miri, which checks every unsafe block,
# zerocopy cast and pointer they run for undefined behaviour.
#
#   scripts/miri.sh [extra cargo test arguments]
#
# Installs nightly with the miri and rust-src components when missing.
# Property tests run PROPTEST_CASES cases each (default 4; the few with
# an explicit count use 4 under cfg(miri)): Miri interprets every
# instruction, about a thousand times slower than native. Set
# PROPTEST_CASES higher for a longer pass. scripts/test.sh runs this when
# nightly can be installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'miri: %s\n' "$*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
installed=$(rustup component list --installed --toolchain nightly)
for comp in miri rust-src; do
    if ! grep -q "^${comp}\(-\|$\)" <<<"$installed"; then
        log "adding $comp to nightly"
        rustup component add "$comp" --toolchain nightly
    fi
done

export PROPTEST_CASES=${PROPTEST_CASES:-4}
# proptest keeps failing cases in files next to the tests; Miri's
# isolation would refuse that file access.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
# Miri has its own sysroot and build flags: a target directory of its own.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/miri}

cargo +nightly miri setup
log "pvh-bootparams"
cargo +nightly miri test -p pvh-bootparams "$@"
log "pvh-entry (with the runtime's host-testable logic)"
cargo +nightly miri test -p pvh-entry --features rt "$@"
log "done"
