#!/usr/bin/env bash
# bench-speed.sh - every figure of docs/benchmarks.md's issue-15 sections in
# one command, for a quiet machine:
#
#   scripts/bench-speed.sh [RUNS]        (default 5)
#
# 1. scripts/bench-nested.sh RUNS  Linux under pvh, Firecracker, Cloud
#                                  Hypervisor and QEMU, side by side in one
#                                  nested L1 (plus a profile pass)
# 2. scripts/bench-unpack.sh RUNS  pvh-unpack's decoders against xz, gzip
#                                  and zstd; the unpack cache vs the vmlinux
# 3. scripts/bench-launch.sh RUNS  pvh launch of 1..16 domains; planning cost
#
# Prints everything and writes it to <target>/bench-speed/results.txt, with
# the machine and the load average before and after. Takes about
# 15-25 minutes on an idle 2-core machine with RUNS=5.
set -euo pipefail
runs=${1:-5}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
out=$target/bench-speed
mkdir -p "$out"
{
    echo "# bench-speed $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "$script_dir/bench-nested.sh" "$runs"
    echo
    "$script_dir/bench-unpack.sh" "$runs"
    echo
    "$script_dir/bench-launch.sh" "$runs"
    echo
    echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out/results.txt"
echo "bench-speed: results in $out/results.txt" >&2
