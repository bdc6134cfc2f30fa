#!/usr/bin/env bash
# bench-launch.sh - how `pvh launch` scales with the number of domains.
#
#   scripts/bench-launch.sh [RUNS]        (default 5)
#
# For N = 1, 2, 4, 8, 16: a dom0less device tree of N domains, each the
# built-in probe guest (64 MiB, 1 vCPU), booted by `pvh launch` on this
# machine's /dev/kvm. RUNS interleaved rounds (1, 2, 4, 8, 16, 1, 2, ...):
# wall time (process start to exit) and peak RSS (`time -f %M`), median and
# spread per N, and the least-squares slope of each against N (the cost of
# one more domain) with the intercept. Every run must exit 0 with
# `probe.done=1` from each of its N domains.
#
# Planning cost: `pvh launch --plan` (parse the tree, check every domain,
# print the plan; no VM) for N = 1, 16, 128 and 1024 domains, with the
# time per domain, which stays flat if planning is linear in the nodes
# (criterion's finer view: `cargo bench -p pvh-bootdomains --bench
# bootinfo`).
#
# Builds what it needs (cargo build --release). Scratch files and logs:
# <target>/bench-launch/.
set -euo pipefail

runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
work=$target/bench-launch
mkdir -p "$work"

log() { printf 'bench-launch: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[[ -c /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is missing or not writable"
command -v dtc >/dev/null 2>&1 || die "dtc not found (device-tree-compiler; scripts/setup.sh)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian package 'time'; scripts/setup.sh)"

log "building pvh and kvm-floor (release)"
(cd "$repo_root" && cargo build --release -q -p pvh-hypervisor --bin pvh -p pvh-kvm-floor --bin kvm-floor) ||
    die "cargo build failed"
pvh=$target/release/pvh
cp "$("$target/release/kvm-floor" probe-path)" "$work/probe.elf"

# tree N: N dom0less domains, each the probe with its own command line.
tree() {
    local n=$1 i
    {
        printf '/dts-v1/;\n/ { chosen {\n  #address-cells = <2>; #size-cells = <2>;\n'
        for ((i = 1; i <= n; i++)); do
            printf '  domU%d {\n    compatible = "xen,domain";\n    #address-cells = <2>; #size-cells = <2>;\n' "$i"
            printf '    memory = <0x0 0x10000>;\n    cpus = <1>;\n'
            printf '    module@1 { compatible = "multiboot,kernel", "multiboot,module";\n'
            printf '               xen,uefi-binary = "probe.elf"; bootargs = "domain=%d"; };\n  };\n' "$i"
        done
        printf '}; };\n'
    } >"$work/tree-$n.dts"
    dtc -q -I dts -O dtb -o "$work/tree-$n.dtb" "$work/tree-$n.dts"
}

counts=(1 2 4 8 16)
for n in "${counts[@]}" 128 1024; do tree "$n"; done

# run_once N: appends "wall_us rss_kib" to $work/launch-N.samples.
run_once() {
    local n=$1 t0 t1 rc=0 done_count
    t0=$EPOCHREALTIME
    /usr/bin/time -f %M -o "$work/launch-$n.rss" "$pvh" launch "$work/tree-$n.dtb" --dir "$work" \
        --host-memory 4G --timeout 120 </dev/null >"$work/launch-$n.out" 2>"$work/launch-$n.err" || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || die "launch of $n domains: exit status $rc (see $work/launch-$n.out, .err)"
    done_count=$(tr -d '\r' <"$work/launch-$n.out" | grep -c '^(d[0-9]*) probe.done=1$' || true)
    ((done_count == n)) || die "launch of $n domains: $done_count probes finished (see $work/launch-$n.out)"
    echo "$((${t1/./} - ${t0/./})) $(tail -n1 "$work/launch-$n.rss")" >>"$work/launch-$n.samples"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for n in "${counts[@]}"; do run_once "$n"; : >"$work/launch-$n.samples"; done # warm-up
for ((r = 0; r < runs; r++)); do
    for n in "${counts[@]}"; do run_once "$n"; done
done

echo "pvh launch of N probe domains (64 MiB, 1 vCPU each), median of $runs interleaved rounds; $(nproc) CPUs, $(uname -r)"
echo "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%4s %10s %10s %10s %12s %14s\n' N "wall ms" "min ms" "max ms" "ms/domain" "peak RSS MiB"
for n in "${counts[@]}"; do
    sort -n "$work/launch-$n.samples" | awk -v n="$n" '
        {w[NR] = $1; r[NR] = $2}
        END {
            m = (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2
            # RSS median on its own order
            for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (r[j] < r[i]) { x = r[i]; r[i] = r[j]; r[j] = x }
            rm = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
            printf "%4d %10.1f %10.1f %10.1f %12.1f %14.1f\n", n, m / 1000, w[1] / 1000, w[NR] / 1000, m / 1000 / n, rm / 1024
        }'
done | tee "$work/table.txt"
# Least squares over every sample (not the medians): y = a + b N.
for n in "${counts[@]}"; do sed "s/^/$n /" "$work/launch-$n.samples"; done | awk '
    {x = $1; sx += x; sxx += x * x; n++
     sw += $2 / 1000; sxw += x * $2 / 1000; sr += $3 / 1024; sxr += x * $3 / 1024}
    END {
        d = n * sxx - sx * sx
        bw = (n * sxw - sx * sw) / d; aw = (sw - bw * sx) / n
        br = (n * sxr - sx * sr) / d; ar = (sr - br * sx) / n
        printf "slope: wall %.1f ms per domain (intercept %.1f ms); peak RSS %.2f MiB per domain (intercept %.1f MiB)\n", bw, aw, br, ar
    }'

echo
echo "pvh launch --plan (parse and check the tree, no VM), median of $runs"
printf '%6s %10s %14s %20s\n' N "wall ms" "us/domain" "us per added domain"
base=
for n in 1 16 128 1024; do
    : >"$work/plan-$n.samples"
    for ((r = 0; r < runs; r++)); do
        t0=$EPOCHREALTIME
        "$pvh" launch "$work/tree-$n.dtb" --dir "$work" --host-memory 4096G --plan >/dev/null ||
            die "launch --plan of $n domains failed"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$work/plan-$n.samples"
    done
    m=$(sort -n "$work/plan-$n.samples" | awk '{v[NR] = $1} END {
        printf "%d", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    base=${base:-$m}
    # Per added domain: over N=1 (which is mostly process start), the
    # figure that stays flat if planning is linear in the nodes.
    awk -v n="$n" -v m="$m" -v b="$base" 'BEGIN {
        printf "%6d %10.1f %14.1f %20s\n", n, m / 1000, m / n, (n > 1) ? sprintf("%.1f", (m - b) / (n - 1)) : "-" }'
done
