#!/usr/bin/env bash
# bench-stub.sh - what the zero-page stub costs, under QEMU TCG.
#
#   scripts/bench-stub.sh [RUNS]        (default 5)
#
# Side by side, in one run, the time from QEMU start to the busybox /init
# marker for the same Debian kernel and initramfs on `-M q35`:
#   (a) qemu-bz    QEMU's own bzImage boot        (-kernel bzImage)
#   (b) pvh-wrap   `pvh wrap` + the same bzImage  (-kernel wrapped.elf, PVH)
#   (c) pvh-elf    the vmlinux through PVH        (-kernel vmlinux)
# as medians of RUNS runs (runs interleaved a, b, c, a, b, c, ... so load
# changes hit every case alike), with ratios to (a); and the stub's own
# work (`stub.tsc=` cycles, entry of main to the jump to Linux) in
# microseconds and as a share of case (b)'s boot.
#
# TSC cycles are converted with the host TSC rate (QEMU TCG's RDTSC follows
# the host TSC): $TSC_MHZ, else the first "cpu MHz" of /proc/cpuinfo.
# `pvh` is $PVH, else target/release/pvh (built if missing).
# Artifacts: scripts/fetch-artifacts.sh (run if missing). Logs stay in
# $PVH_ARTIFACTS/bench-stub/.
set -euo pipefail

runs=${1:-5}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
cache=${PVH_ARTIFACTS:-$repo_root/target/pvh-artifacts}
qemu=${QEMU:-qemu-system-x86_64}
marker=PVH-BENCH-MARKER
work=$cache/bench-stub
mkdir -p "$work"

log() { printf 'bench-stub: %s\n' "$*" >&2; }

if [[ ! -f $cache/vmlinux || ! -f $cache/bzImage ]]; then
    log "artifacts missing, running fetch-artifacts.sh"
    PVH_ARTIFACTS=$cache "$script_dir/fetch-artifacts.sh"
fi
command -v "$qemu" >/dev/null 2>&1 || { log "$qemu not found; run scripts/setup.sh"; exit 1; }

pvh=${PVH:-$repo_root/target/release/pvh}
if [[ ! -x $pvh ]]; then
    log "building pvh (release)"
    (cd "$repo_root" && cargo build --release -q -p pvh-hypervisor --bin pvh)
    pvh=$repo_root/target/release/pvh
fi

cat >"$work/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
echo $marker
reboot -f
EOF
"$script_dir/mkinitramfs.sh" "$work/initrd.cpio" "$work/init" >/dev/null
"$pvh" wrap "$cache/bzImage" -o "$work/wrapped.elf" >/dev/null

cmdline="console=ttyS0 panic=-1 reboot=k quiet"
now() { date +%s.%N; }

# run_once KERNEL LOG -> prints seconds from start to marker ("-" if none)
run_once() {
    local kernel=$1 logf=$2 start pid seen=""
    : >"$logf"
    start=$(now)
    timeout 300 "$qemu" -M q35,accel=tcg -cpu max -m 512 -nographic -nodefaults \
        -serial stdio -no-reboot -kernel "$kernel" -initrd "$work/initrd.cpio" \
        -append "$cmdline" </dev/null >"$logf" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if grep -qa "$marker" "$logf"; then
            seen=$(now)
            kill "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.02
    done
    wait "$pid" 2>/dev/null || true
    if [[ -z $seen ]] && grep -qa "$marker" "$logf"; then seen=$(now); fi
    if [[ -n $seen ]]; then
        awk -v a="$start" -v b="$seen" 'BEGIN { printf "%.3f\n", b - a }'
    else
        echo -
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A kernel=([qemu-bz]=$cache/bzImage [pvh-wrap]=$work/wrapped.elf [pvh-elf]=$cache/vmlinux)
cases=(qemu-bz pvh-wrap pvh-elf)
declare -A times
tscs=()
for ((i = 1; i <= runs; i++)); do
    for c in "${cases[@]}"; do
        t=$(run_once "${kernel[$c]}" "$work/$c.$i.log")
        times[$c]+="$t "
        if [[ $c == pvh-wrap ]]; then
            tsc=$(grep -ao 'stub.tsc=[0-9]*' "$work/$c.$i.log" | head -1 | cut -d= -f2 || true)
            [[ -n $tsc ]] && tscs+=("$tsc")
        fi
        log "run $i $c: ${t}s"
    done
done

mhz=${TSC_MHZ:-$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)}
printf '\nQEMU TCG, -M q35 -cpu max -m 512, %s runs each, time from QEMU start to the /init marker\n' "$runs"
printf '%-10s %-44s %10s %8s  %s\n' case what median ratio runs
base=$(printf '%s\n' ${times[qemu-bz]} | grep -v -- - | median)
declare -A what=([qemu-bz]="QEMU's own bzImage boot (-kernel bzImage)" [pvh-wrap]="pvh wrap + the same bzImage (PVH + stub)" [pvh-elf]="vmlinux through PVH (-kernel vmlinux)")
for c in "${cases[@]}"; do
    m=$(printf '%s\n' ${times[$c]} | grep -v -- - | median)
    r=$(awk -v m="$m" -v b="$base" 'BEGIN { if (m == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", m / b }')
    printf '%-10s %-44s %9ss %8s  %s\n' "$c" "${what[$c]}" "$m" "$r" "${times[$c]}"
done
if ((${#tscs[@]})); then
    tsc_med=$(printf '%s\n' "${tscs[@]}" | median)
    wrap_med=$(printf '%s\n' ${times[pvh-wrap]} | grep -v -- - | median)
    awk -v t="$tsc_med" -v mhz="$mhz" -v boot="$wrap_med" 'BEGIN {
        us = t / mhz
        printf "\nstub work (stub.tsc, main to kernel jump): median %d cycles = %.0f us at %.0f MHz", t, us, mhz
        if (boot != "-" && boot > 0) printf " = %.3f%% of the pvh-wrap boot\n", us / 1e4 / boot; else printf "\n"
    }'
    printf 'stub.tsc per run: %s\n' "${tscs[*]}"
fi
