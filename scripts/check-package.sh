#!/usr/bin/env bash
# check-package.sh - the published crates package, and `cargo install` of the
# `pvh` binary works from the packages alone, as on a machine that has only
# the .crate files (nothing on crates.io yet) and crates.io for the rest.
#
#   0. those crates (every workspace member not marked `publish = false`,
#      found with `cargo metadata`, so a new crate is covered by default)
#      build, every feature on, with the toolchain of their declared
#      `rust-version` (installed with rustup's minimal profile if missing;
#      the guest images come from pvh-guests' prebuilt/, so that toolchain
#      needs no guest target);
#   1. `cargo package` of them;
#   2. every .crate unpacked into a scratch directory outside the repository
#      (no workspace, no ../guests: pvh-guests uses its shipped images);
#   3. `cargo install --path <unpacked pvh-hypervisor>` with each unpacked
#      crate patched in for its crates.io name (what publishing would give),
#      into a scratch root; `--debug` to keep it short (the profile does not
#      change what packaging can break);
#   4. the installed `pvh --version` and `pvh inspect` on the probe.
#
# The build goes to target/check-package (kept between runs, so a rerun is
# incremental). Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
log() { printf 'check-package: %s\n' "$*"; }

target=$root/target/check-package
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pvh-check-package.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# --- the published crates -------------------------------------------------
crates=()
while read -r manifest; do
    if grep -Eq '^publish *= *false' "$manifest"; then
        continue
    fi
    crates+=("$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)")
done < <(cargo metadata --no-deps --format-version 1 |
    grep -o '"manifest_path":"[^"]*"' | cut -d'"' -f4)
((${#crates[@]})) || {
    log "no publishable crates found"
    exit 1
}
# --- 0. minimum Rust version -------------------------------------------------
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
log "cargo +$msrv check --all-features (rust-version)"
rustup toolchain list | grep -q "^$msrv-" ||
    rustup toolchain install "$msrv" --profile minimal
PVH_GUESTS_PREBUILT=1 cargo "+$msrv" check --all-features --target-dir "$target/msrv" \
    $(printf -- '-p %s ' "${crates[@]}")
log "rust-version $msrv: ok (${SECONDS}s so far)"

# --- 1. package ------------------------------------------------------------
log "packaging ${crates[*]}"
rm -rf "$target/package"
# No --verify build here: step 3 builds every package from its .crate.
cargo package --no-verify --allow-dirty --target-dir "$target" \
    $(printf -- '-p %s ' "${crates[@]}")

log "packaged (${SECONDS}s so far)"

# --- 2. unpack -------------------------------------------------------------
mkdir -p "$scratch/src"
patches=()
for crate in "${crates[@]}"; do
    file=$(ls "$target/package/$crate"-[0-9]*.crate)
    tar -xzf "$file" -C "$scratch/src"
    dir=$(basename "$file" .crate)
    patches+=(--config "patch.crates-io.$crate.path=\"$scratch/src/$dir\"")
done
hypervisor=$(ls -d "$scratch/src"/pvh-hypervisor-[0-9]*)
# pvh-guests ships its images (and the build sees no ../guests beside it).
guests=$(ls -d "$scratch/src"/pvh-guests-[0-9]*)
test -s "$guests/prebuilt/pvh-probe" && test -s "$guests/prebuilt/pvh-stub"
test ! -e "$scratch/src/guests"

# --- 3. install ------------------------------------------------------------
log "cargo install --path ${hypervisor#"$scratch/"} (debug profile)"
# Nothing from the repository's environment: no prebuilt override, no
# target directory but ours.
env -u PVH_GUESTS_PREBUILT -u CARGO_TARGET_DIR \
    cargo install --debug --path "$hypervisor" --root "$scratch/root" \
    --target-dir "$target/install" "${patches[@]}" 2>&1 | tee "$scratch/install.log"
if grep -q 'was not used in the crate graph' "$scratch/install.log"; then
    log "a packaged crate is not in pvh's dependency tree: check it here too"
    exit 1
fi

log "installed (${SECONDS}s so far)"

# --- 4. run ----------------------------------------------------------------
pvh=$scratch/root/bin/pvh
version=$("$pvh" --version)
log "installed: $version"
expected=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
[[ $version == "pvh $expected" ]] || {
    log "expected 'pvh $expected'"
    exit 1
}
inspect=$("$pvh" inspect guests-bin/prebuilt/pvh-probe)
grep -qx 'format: PVH ELF' <<<"$inspect" &&
    grep -qx 'bootable: yes' <<<"$inspect" || {
    log "pvh inspect on the probe said:"
    printf '%s\n' "$inspect"
    exit 1
}
log "ok in ${SECONDS}s: ${#crates[@]} crates build at $msrv, package, pvh installs from them and runs"
