#!/usr/bin/env bash
# bench-boot.sh - process start to exit of `pvh boot`, QEMU and the KVM
# floor, side by side on this machine's /dev/kvm; and pvh's peak RSS.
#
#   scripts/bench-boot.sh [RUNS] [--nested]        (RUNS default 5)
#
# Cases (all on KVM, guest RAM 512 MiB):
#   floor       bench/kvm-floor: VM + irqchip + PIT + one vCPU + 512 MiB,
#               guest `xor eax,eax; out 0xf4,al` (first instruction exits)
#   pvh-exit    pvh boot --kernel exit.elf   (the same two instructions as
#               a PVH ELF, written by `kvm-floor write-elf`)
#   qemu-exit   qemu-system-x86_64 -M microvm,accel=kvm ... -kernel exit.elf
#   pvh-probe   pvh boot                     (the built-in probe guest)
#   qemu-probe  qemu-system-x86_64 -M microvm,accel=kvm ... -kernel <probe>
# Each case runs once to warm caches, then RUNS times, interleaved (floor,
# pvh-exit, ..., floor, pvh-exit, ...) so load from other users of the
# machine hits every case alike. Wall time is bash's $EPOCHREALTIME around
# `/usr/bin/time -f %M CMD` (so every case pays the same fork/exec of
# time(1)); peak RSS is time's %M (the child's ru_maxrss). Every run's exit
# status is checked, and the probe cases must print `probe.done=1`.
#
# Then: the floor's own phase times; one run of each case under `perf
# stat` for CPU time (task-clock) and KVM's emulated instructions and exits
# to userspace (if perf and the kvm tracepoints are
# there), and pvh's peak RSS minus the guest RAM it touched, for
# --memory 64M and 512M (the guest mapping's Rss is sampled from
# /proc/PID/smaps while the probe runs; see docs/benchmarks.md).
#
# --nested then runs scripts/bench-nested.sh RUNS: Linux booted under pvh,
# Firecracker, Cloud Hypervisor and QEMU side by side in one nested L1
# (see that script and docs/benchmarks.md).
#
# Builds what it needs (cargo build --release). Target dir:
# $CARGO_TARGET_DIR, else <repo>/target. QEMU: $QEMU, else
# qemu-system-x86_64. Logs: <target>/bench-boot/.
set -euo pipefail

runs=5
nested=0
for arg in "$@"; do
    case $arg in
        --nested) nested=1 ;;
        *) runs=$arg ;;
    esac
done
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
qemu=${QEMU:-qemu-system-x86_64}
work=$target/bench-boot
mkdir -p "$work"

log() { printf 'bench-boot: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
[[ -c /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is missing or not writable"
command -v "$qemu" >/dev/null 2>&1 || die "$qemu not found; run scripts/setup.sh"
[[ -x /usr/bin/time ]] || {
    log "installing GNU time (Debian package 'time')"
    apt-get install -y -q time >/dev/null || die "cannot install GNU time"
}

log "building pvh and kvm-floor (release)"
(cd "$repo_root" && cargo build --release -q -p pvh-hypervisor --bin pvh -p pvh-kvm-floor --bin kvm-floor) \
    || die "cargo build failed"
pvh=$target/release/pvh
floor=$target/release/kvm-floor
exit_elf=$work/exit.elf
"$floor" write-elf "$exit_elf"
probe=$("$floor" probe-path)
[[ -f $probe ]] || die "probe ELF not found at $probe"

# QEMU on this nested (PVM) KVM: `-cpu host` dies setting MSR 0x10a
# (IA32_ARCH_CAPABILITIES); take the first machine/CPU pair that runs the
# probe to its end.
qemu_args=()
for machine in microvm q35 pc; do
    for cpu in host host,-arch-capabilities; do
        # shellcheck disable=SC2054 # the commas are QEMU's, not array separators
        args=(-M "$machine,accel=kvm" -cpu "$cpu" -m 512 -nodefaults -nographic -serial stdio
              -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4)
        # (a subshell, so bash's "Aborted" notice for QEMU's abort() stays quiet)
        (timeout 60 "$qemu" "${args[@]}" -kernel "$probe" </dev/null >"$work/qemu-detect.log" 2>&1 || true) 2>/dev/null
        if tr -d '\r' <"$work/qemu-detect.log" | grep -qx 'probe.done=1'; then
            qemu_args=("${args[@]}")
            break 2
        fi
        log "QEMU -M $machine -cpu $cpu does not run the probe: $(head -c 200 "$work/qemu-detect.log" | tr '\n' ' ')"
    done
done
((${#qemu_args[@]})) || die "no QEMU machine ran the probe on KVM"
qemu_desc="-M ${qemu_args[1]} -cpu ${qemu_args[3]}"
log "QEMU: $qemu_desc"

# name | expected exit status | required output line ('' = none) | command
cases=(floor pvh-exit qemu-exit pvh-probe qemu-probe)
declare -A want_rc marker cmd
want_rc=([floor]=0 [pvh-exit]=0 [qemu-exit]=1 [pvh-probe]=0 [qemu-probe]=1)
marker=([floor]='' [pvh-exit]='' [qemu-exit]='' [pvh-probe]='probe.done=1' [qemu-probe]='probe.done=1')
# QEMU's isa-debug-exit status is (value << 1) | 1: the guests write 0.
cmd=(
    [floor]="$(printf '%q ' "$floor")"
    [pvh-exit]="$(printf '%q ' "$pvh" boot --kernel "$exit_elf")"
    [qemu-exit]="$(printf '%q ' "$qemu" "${qemu_args[@]}" -kernel "$exit_elf")"
    [pvh-probe]="$(printf '%q ' "$pvh" boot)"
    [qemu-probe]="$(printf '%q ' "$qemu" "${qemu_args[@]}" -kernel "$probe")"
)

# run_once CASE -> appends "wall_us rss_kib" to $work/CASE.samples
run_once() {
    local c=$1 t0 t1 rc=0
    t0=$EPOCHREALTIME
    eval "/usr/bin/time -f %M -o $(printf '%q' "$work/$c.rss") ${cmd[$c]}" \
        </dev/null >"$work/$c.out" 2>"$work/$c.err" || rc=$?
    t1=$EPOCHREALTIME
    if [[ $rc != "${want_rc[$c]}" ]]; then
        die "$c: exit status $rc, expected ${want_rc[$c]} (see $work/$c.out, $work/$c.err)"
    fi
    if [[ -n ${marker[$c]} ]] && ! tr -d '\r' <"$work/$c.out" | grep -qx "${marker[$c]}"; then
        die "$c: '${marker[$c]}' not in its output ($work/$c.out)"
    fi
    # time(1) adds "Command exited with non-zero status N" before %M.
    echo "$((${t1/./} - ${t0/./})) $(tail -n1 "$work/$c.rss")" >>"$work/$c.samples"
}

for c in "${cases[@]}"; do
    : >"$work/$c.samples"
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up, then $runs interleaved rounds"
for c in "${cases[@]}"; do run_once "$c"; done
for c in "${cases[@]}"; do : >"$work/$c.samples"; done
for ((i = 1; i <= runs; i++)); do
    for c in "${cases[@]}"; do run_once "$c"; done
done

# median FILE COLUMN
median() { awk -v k="$2" '{print $k}' "$1" | sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; print m}'; }
minmax() { awk -v k="$2" '{print $k}' "$1" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo, hi}'; }

floor_us=$(median "$work/floor.samples" 1)
echo
echo "Boot, process start to exit, median of $runs ($(nproc) CPUs, $(uname -r); QEMU $qemu_desc)"
echo "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %10s %10s %10s %9s %12s\n' case "wall ms" "min ms" "max ms" "x floor" "max RSS MiB"
for c in "${cases[@]}"; do
    med=$(median "$work/$c.samples" 1)
    read -r lo hi < <(minmax "$work/$c.samples" 1)
    rss=$(median "$work/$c.samples" 2)
    awk -v c="$c" -v m="$med" -v lo="$lo" -v hi="$hi" -v f="$floor_us" -v r="$rss" \
        'BEGIN {printf "%-11s %10.1f %10.1f %10.1f %9.2f %12.1f\n", c, m/1000, lo/1000, hi/1000, m/f, r/1024}'
done

# Where the floor's time goes, from its own clock (Instant around the
# phases; process start and exit are outside these).
for ((i = 1; i <= runs; i++)); do
    "$floor" --verbose 2>&1 >/dev/null | sed -n 's/.*setup \(.*\), run \(.*\), teardown \(.*\)$/\1 \2 \3/p'
done | awk '
    function ms(v) { if (v ~ /ms$/) return v + 0; if (v ~ /µs$/) return v / 1000; if (v ~ /ns$/) return v / 1e6; return v * 1000 }
    {s[NR] = ms($1); r[NR] = ms($2); t[NR] = ms($3)}
    function med(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END {n = NR; printf "\nfloor phases, median of %d: setup %.2f ms, KVM_RUN %.3f ms, teardown %.2f ms\n", n, med(s, n), med(r, n), med(t, n)}'

# KVM's view of each case: instructions it emulated and exits to userspace.
if command -v perf >/dev/null 2>&1 &&
    perf stat -x, -e kvm:kvm_emulate_insn true >/dev/null 2>&1; then
    echo
    echo "CPU time and KVM events, one run each (perf stat)"
    printf '%-11s %12s %14s %14s\n' case "CPU ms" "emulated insn" "exits to user"
    for c in "${cases[@]}"; do
        eval "perf stat -x, -o $(printf '%q' "$work/$c.perf") -e task-clock,kvm:kvm_emulate_insn,kvm:kvm_userspace_exit ${cmd[$c]}" \
            </dev/null >/dev/null 2>&1 || true
        awk -F, -v c="$c" '/task-clock/ {t=$1} /kvm_emulate_insn/ {e=$1} /kvm_userspace_exit/ {u=$1}
            END {printf "%-11s %12.2f %14s %14s\n", c, t, e, u}' "$work/$c.perf"
    done
else
    log "perf or the kvm tracepoints are unavailable (mount tracefs on /sys/kernel/tracing); no KVM event counts"
fi

# pvh's peak RSS minus the guest RAM it touched. The guest RAM mapping is
# the anonymous mapping whose size is --memory; its Rss is sampled from
# /proc/PID/smaps every 10 ms while the probe runs (about a second; guest
# pages only ever get added, so the last sample is the largest).
rss_sample() {
    local mem=$1 kib=$2 tpid pid=''
    /usr/bin/time -f %M -o "$work/rss-$mem.time" "$pvh" boot --memory "$mem" \
        </dev/null >"$work/rss-$mem.out" 2>&1 &
    tpid=$!
    local guest=0 anon=0 file=0 hwm=0
    while kill -0 "$tpid" 2>/dev/null; do
        [[ -n $pid ]] || pid=$(pgrep -P "$tpid" || true)
        if [[ -n $pid && -r /proc/$pid/smaps ]]; then
            read -r g a f h < <(awk -v kib="$kib" '
                /^[0-9a-f]+-[0-9a-f]+ / {cur=0}
                /^Size:/ {cur=($2==kib)}
                /^Rss:/ && cur {g+=$2}
                END {printf "%d ", g}' "/proc/$pid/smaps" 2>/dev/null
                awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} /^VmHWM:/ {h=$2}
                END {printf "%d %d %d\n", a, f, h}' "/proc/$pid/status" 2>/dev/null) || true
            ((${g:-0} > guest)) && guest=$g
            ((${a:-0} > anon)) && anon=$a
            ((${f:-0} > file)) && file=$f
            ((${h:-0} > hwm)) && hwm=$h
        fi
        sleep 0.01
    done
    wait "$tpid" || die "pvh boot --memory $mem failed ($work/rss-$mem.out)"
    tr -d '\r' <"$work/rss-$mem.out" | grep -qx 'probe.done=1' || die "probe did not finish ($work/rss-$mem.out)"
    echo "$(tail -n1 "$work/rss-$mem.time") $guest $anon $file $hwm" >>"$work/rss-$mem.samples"
}

echo
echo "pvh boot (probe) peak RSS minus touched guest RAM, KiB, median of $runs"
printf '%-8s %10s %10s %10s %10s %12s\n' memory "max RSS" "guest Rss" "RssAnon" "RssFile" "RSS - guest"
for mem_mib in 64 512; do
    mem=${mem_mib}M
    : >"$work/rss-$mem.samples"
    for ((i = 1; i <= runs; i++)); do rss_sample "$mem" $((mem_mib * 1024)); done
    f=$work/rss-$mem.samples
    max=$(median "$f" 1) guest=$(median "$f" 2) anon=$(median "$f" 3) file=$(median "$f" 4)
    own=$(awk '{print $1 - $2}' "$f" | sort -n | awk '{v[NR]=$1} END {print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}')
    printf '%-8s %10s %10s %10s %10s %12s\n' "$mem" "$max" "$guest" "$anon" "$file" "$own"
done

if ((nested)); then
    # The nested side-by-side benchmark (pvh, Firecracker, Cloud Hypervisor,
    # QEMU in one L1) has its own script.
    echo
    "$script_dir/bench-nested.sh" "$runs"
fi

echo
log "samples and logs in $work"
