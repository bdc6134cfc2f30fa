#!/usr/bin/env bash
# bench-ab.sh - this tree's pvh against another revision's, side by side in
# one nested L1 (scripts/bench-nested.sh with PVH_COMPARE_BIN).
#
#   scripts/bench-ab.sh REV [RUNS]        (RUNS default 5)
#
# Builds a static pvh of git revision REV in a temporary worktree (target
# dir <target>/bench-ab, built the way bench-nested.sh builds its own),
# then runs bench-nested.sh RUNS with it as VMM "pvh-b" next to this
# tree's pvh on the vmlinux, bzimage, wrapped and unpack (warm) paths, or
# the cases PVH_AB_CASES lists (comma-separated) (no other VMMs; the
# profile pass included: its nested-page-fault counts do not depend on
# load). In the table, each pvh-b row's "x best" is the old build against
# this one, and pvh's rows the other way round.
#
# The huge-page before/after of docs/benchmarks.md:
#   scripts/bench-ab.sh 9db3f3b~1
# (the commit before guest RAM became 2 MiB-aligned with MADV_HUGEPAGE;
# later changes ride along, which is why the profile's exit counts matter
# more than the times).
set -euo pipefail
rev=${1:?usage: $0 REV [RUNS]}
runs=${2:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
work=$target/bench-ab
log() { printf 'bench-ab: %s\n' "$*" >&2; }

commit=$(git -C "$repo_root" rev-parse --verify "$rev^{commit}") || { log "no such revision: $rev"; exit 2; }
mkdir -p "$work"
tree=$(mktemp -d "$work/tree.XXXXXX")
cleanup() { git -C "$repo_root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"; }
trap cleanup EXIT
git -C "$repo_root" worktree add --detach "$tree" "$commit" >/dev/null
log "static build of pvh at ${commit:0:12}"
(cd "$tree" && CARGO_TARGET_DIR=$work/target RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release -q --target x86_64-unknown-linux-gnu -p pvh-hypervisor --bin pvh)
bin=$work/pvh-${commit:0:12}
cp "$work/target/x86_64-unknown-linux-gnu/release/pvh" "$bin"
log "pvh-b = $bin"
PVH_COMPARE_BIN=$bin "$script_dir/bench-nested.sh" "$runs" --no-qemu \
    --only "${PVH_AB_CASES:-pvh-vmlinux,pvh-b-vmlinux,pvh-bzimage,pvh-b-bzimage,pvh-wrapped,pvh-b-wrapped,pvh-unpack,pvh-b-unpack}"
