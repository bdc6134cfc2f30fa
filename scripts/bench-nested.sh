#!/usr/bin/env bash
# bench-nested.sh - Linux boot time under pvh, Firecracker, Cloud Hypervisor
# and QEMU, side by side in one nested L1.
#
#   scripts/bench-nested.sh [RUNS] [--short] [--no-profile] [--timeline] [--no-qemu]
#                           [--only CASE,...] [--allow-fail CASE,...]
#
# QEMU TCG (-M q35 -cpu EPYC, the harness of tests/src/lib.rs) runs Debian's
# kernel as L1; L1 loads Debian's kvm modules (kvm-amd: SVM with nested
# paging) and, RUNS interleaved rounds (default 5), boots Debian's kernel as
# L2 (256 MiB, 1 vCPU, a busybox initramfs whose /init prints `L2-MARKER`
# and its /proc/uptime) under every VMM, every path:
#
#   path       pvh                      firecracker / cloud-hypervisor / qemu
#   vmlinux    vmlinux through PVH      vmlinux through PVH
#   bzimage    bzImage via the stub     bzImage via the VMM's own loader
#   wrapped    `pvh wrap` output (PVH)  the same wrapped ELF through PVH
#   linux      --boot-protocol linux    -
#   unpack     --boot-protocol pvh-unpack, decompressed kernel cached (warm)
#   unpack-cold  the same with an empty cache every run
#
# plus the floor program, `pvh boot` of the floor's 2-instruction guest and
# of the built-in probe (pvh's own cost in L1). `kvm-floor stopwatch` times
# each run (spawn to the marker line), kills the VMM at the marker (Cloud
# Hypervisor and QEMU do not exit on a guest reset), and reports its peak
# RSS and, at the marker, its resident and huge-page backed memory.
#
# A profile pass (one more boot of each case, off with --no-profile or
# --short) records load-independent counts in L1: KVM exits by reason
# (tracefs hist trigger on kvm:kvm_exit), exits to userspace, port I/O by
# port, the L2's clocksource, CPU flags and early dmesg, and the stub's
# summary line. --timeline adds one more boot of each Linux case whose L2
# prints its whole kernel log (lines "TL CASE [ seconds] message" in
# console.log; scripts/dmesg-diff.sh lines two cases up); PVH_TIMELINE_ARGS
# adds kernel arguments to that pass only (e.g. memblock=debug, for more
# timestamps in early boot).
#
# Prints the table (median, min-max, ratio to the fastest peer on the same
# path, time before the L2 kernel's clock started, peak RSS per VMM) and
# writes it to <target>/bench-nested/results.txt; every raw line is in
# <target>/bench-nested/console.log. --short: 1 round, no profile, checks
# only that every case reaches its marker (scripts/test.sh runs it).
# --allow-fail: cases that may fail to boot without failing the script
# (shown as "did not boot"); such a case gets 120 s instead of 300 and is
# not run again after its first failure; --short leaves such cases out.
# Default: none (PVH_BENCH_ALLOW_FAIL sets a default list).
#
# Needs: the artifacts of scripts/fetch-artifacts.sh (vmlinux, bzImage,
# kmods; fetched if missing), QEMU, and the peer VMMs in $PVH_PEERS (default
# <repo>/../shared/peers: firecracker, cloud-hypervisor). Builds static pvh
# and kvm-floor (cargo, target dir $CARGO_TARGET_DIR or <repo>/target).
# QEMU: $QEMU, else qemu-system-x86_64 (also copied into L1 with its
# libraries and firmware, unless --no-qemu). PVH_COMPARE_BIN=PATH adds a
# second static pvh as VMM "pvh-b" (A/B of two builds in one L1).
set -euo pipefail

runs=5
short_reps=5
short=0
profile=1
timeline=0
with_qemu=1
only=
allow_fail=
while (($#)); do
    case $1 in
        --short) short=1 profile=0 timeline=0 runs=1 short_reps=1 ;;
        --no-profile) profile=0 ;;
        --timeline) timeline=1 ;;
        --no-qemu) with_qemu=0 ;;
        --only) only=${2:?--only needs a list}; shift ;;
        --allow-fail) allow_fail=${2:?--allow-fail needs a list}; shift ;;
        [1-9]*) runs=$1 ;;
        *) echo "usage: $0 [RUNS] [--short] [--no-profile] [--timeline] [--no-qemu] [--only CASE,...] [--allow-fail CASE,...]" >&2; exit 2 ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
allow_fail=${allow_fail:-${PVH_BENCH_ALLOW_FAIL-}}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
cache=${PVH_ARTIFACTS:-$repo_root/target/pvh-artifacts}
peers=${PVH_PEERS:-$repo_root/../shared/peers}
qemu=${QEMU:-qemu-system-x86_64}
work=$target/bench-nested
mkdir -p "$work"

log() { printf 'bench-nested: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v "$qemu" >/dev/null 2>&1 || die "$qemu not found; run scripts/setup.sh"
command -v socat >/dev/null 2>&1 || die "socat not found (the L1 keepalive); run scripts/setup.sh"
for p in firecracker cloud-hypervisor; do
    [[ -x $peers/$p ]] || die "$peers/$p not found (set PVH_PEERS to the folder with the peer VMMs)"
done
if [[ ! -f $cache/vmlinux || ! -f $cache/bzImage || ! -f $cache/kmods/load-order ]]; then
    log "artifacts missing, running fetch-artifacts.sh"
    PVH_ARTIFACTS=$cache "$script_dir/fetch-artifacts.sh" >&2
fi

# Static (L1's userland is busybox) and not position-independent: a static
# PIE relocates itself at every start (pvh: 3,900 relocations, about 50 k
# instructions and a dozen copied pages), which L1 pays under TCG. The same
# flags and target directory as the nested tests' build (tests/src/lib.rs).
log "static build of pvh and kvm-floor"
static=$target/static
(cd "$repo_root" && CARGO_TARGET_DIR=$static RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release -q --target x86_64-unknown-linux-gnu \
    -p pvh-hypervisor --bin pvh -p pvh-kvm-floor --bin kvm-floor) || die "static build failed"
pvh=$static/x86_64-unknown-linux-gnu/release/pvh
floor=$static/x86_64-unknown-linux-gnu/release/kvm-floor

"$floor" write-elf "$work/exit.elf"
"$pvh" wrap "$cache/bzImage" -o "$work/wrapped.elf" >/dev/null || die "pvh wrap failed"

cat >"$work/l2.init" <<'L2'
#!/bin/sh
mount -t proc proc /proc
read -r up _ </proc/uptime
echo "L2-MARKER uptime=$up"
if grep -q pvhdiag /proc/cmdline; then
    mount -t sysfs sys /sys
    echo "L2-DIAG clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
    echo "L2-DIAG cmdline $(cat /proc/cmdline)"
    grep -m1 '^flags' /proc/cpuinfo | sed 's/^/L2-DIAG /'
    dmesg | grep -i -e tsc -e clocksource -e hypervisor -e 'kvm' -e 'Memory:' -e 'x86/fpu' | sed 's/^/L2-DIAG dmesg /'
fi
# The timeline pass: the L2's whole kernel log, timestamps included.
grep -q pvhdmesg /proc/cmdline && dmesg | sed 's/^/L2-DMESG /'
grep -q -e pvhdiag -e pvhdmesg /proc/cmdline && echo L2-END
reboot -f
L2
"$script_dir/mkinitramfs.sh" "$work/l2.cpio" "$work/l2.init" >/dev/null
cmdline='console=ttyS0 reboot=k panic=-1 quiet'

# Firecracker takes a JSON config per kernel; L1 puts the run's command
# line in for @BOOT_ARGS@. (Not @CMDLINE@: the whole L1 init goes through
# a sed that replaces that placeholder, which once replaced the one in
# L1's own sed below instead, so Firecracker booted with the literal
# "@CMDLINE@": no console=ttyS0, no serial device, no reboot=k, and no
# marker in 120 s.)
for k in vmlinux bzImage wrapped.elf; do
    cat >"$work/fc-$k.json" <<EOF
{"boot-source": {"kernel_image_path": "/l2/$k", "initrd_path": "/l2/initrd.cpio",
  "boot_args": "@BOOT_ARGS@"},
 "drives": [], "machine-config": {"vcpu_count": 1, "mem_size_mib": 256}}
EOF
done

# The cases, as shell lines for L1: NAME|VMM|PATH|COMMAND. @K@ is the
# kernel, @C@ the command line (extended with `pvhdiag` in the profile pass).
l2_args='--initrd /l2/initrd.cpio --memory 256M --cmdline "@C@"'
qemu_l2='/usr/bin/qemu-system-x86_64 -M microvm,accel=kvm -cpu host -m 256 -smp 1 -nodefaults -nographic -serial stdio -no-reboot -initrd /l2/initrd.cpio -append "@C@"'
ch_l2='/peers/cloud-hypervisor --initramfs /l2/initrd.cpio --cmdline "@C@" --serial tty --console off --memory size=256M --cpus boot=1'
fc_l2='/peers/firecracker --no-api --no-seccomp --config-file /tmp/fc.json'
all_cases=(
    "floor|floor|exit|/kvm-floor"
    "pvh-exit|pvh|exit|/pvh boot --kernel /exit.elf"
    "pvh-probe|pvh|probe|/pvh boot"
    "pvh-vmlinux|pvh|vmlinux|/pvh boot --kernel /l2/vmlinux $l2_args"
    "fc-vmlinux|firecracker|vmlinux|FC=vmlinux $fc_l2"
    "ch-vmlinux|cloud-hypervisor|vmlinux|$ch_l2 --kernel /l2/vmlinux"
    "qemu-vmlinux|qemu|vmlinux|$qemu_l2 -kernel /l2/vmlinux"
    "pvh-bzimage|pvh|bzimage|/pvh boot --kernel /l2/bzImage $l2_args"
    "fc-bzimage|firecracker|bzimage|FC=bzImage $fc_l2"
    "ch-bzimage|cloud-hypervisor|bzimage|$ch_l2 --kernel /l2/bzImage"
    "qemu-bzimage|qemu|bzimage|$qemu_l2 -kernel /l2/bzImage"
    "pvh-wrapped|pvh|wrapped|/pvh boot --kernel /l2/wrapped.elf $l2_args"
    "fc-wrapped|firecracker|wrapped|FC=wrapped.elf $fc_l2"
    "ch-wrapped|cloud-hypervisor|wrapped|$ch_l2 --kernel /l2/wrapped.elf"
    "qemu-wrapped|qemu|wrapped|$qemu_l2 -kernel /l2/wrapped.elf"
    "pvh-linux|pvh|linux|/pvh boot --kernel /l2/bzImage --boot-protocol linux $l2_args"
    "pvh-unpack|pvh|unpack|/pvh boot --kernel /l2/bzImage --boot-protocol pvh-unpack $l2_args"
    "pvh-unpack-cold|pvh|unpack-cold|COLD=1 /pvh boot --kernel /l2/bzImage --boot-protocol pvh-unpack $l2_args"
)
# PVH_COMPARE_BIN: a second (static) pvh build, booted as VMM "pvh-b" on
# the vmlinux, bzimage, wrapped, exit and unpack paths in the same L1: an A/B
# comparison of two pvh versions under identical conditions. pvh-b keeps its
# own unpack cache (CACHE=b): two versions of the entry format would evict
# each other's entries.
if [[ -n ${PVH_COMPARE_BIN:-} ]]; then
    [[ -x $PVH_COMPARE_BIN ]] || die "PVH_COMPARE_BIN=$PVH_COMPARE_BIN is not an executable"
    all_cases+=(
        "pvh-b-vmlinux|pvh-b|vmlinux|/pvh-b boot --kernel /l2/vmlinux $l2_args"
        "pvh-b-bzimage|pvh-b|bzimage|/pvh-b boot --kernel /l2/bzImage $l2_args"
        "pvh-b-wrapped|pvh-b|wrapped|/pvh-b boot --kernel /l2/wrapped.elf $l2_args"
        "pvh-b-exit|pvh-b|exit|/pvh-b boot --kernel /exit.elf"
        "pvh-b-unpack|pvh-b|unpack|CACHE=b /pvh-b boot --kernel /l2/bzImage --boot-protocol pvh-unpack $l2_args"
    )
fi
cases=()
for c in "${all_cases[@]}"; do
    name=${c%%|*}
    rest=${c#*|}
    vmm=${rest%%|*}
    [[ $vmm == qemu ]] && ((!with_qemu)) && continue
    if [[ -n $only ]] && [[ ",$only," != *",$name,"* ]]; then continue; fi
    # --short checks what must boot; a case allowed to fail proves nothing
    # there and would cost its timeout.
    if ((short)) && [[ ",$allow_fail," == *",$name,"* ]]; then
        log "--short: not running $name (allowed to fail)"
        continue
    fi
    cases+=("$c")
done
((${#cases[@]})) || die "no cases selected"

{
    cat <<'L1'
#!/bin/sh
mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
for m in $(cat /kmods/load-order); do insmod /kmods/$m 2>/dev/null; done
[ -e /dev/kvm ] || { echo L1-NO-KVM; reboot -f; }
echo L1-KVM-READY
echo "L1-INFO thp_enabled $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
echo "L1-INFO thp_defrag $(cat /sys/kernel/mm/transparent_hugepage/defrag)"
echo "L1-INFO kernel $(uname -r) mem $(grep MemTotal /proc/meminfo)"
export XDG_CACHE_HOME=/tmp/xdg-cache
T=/sys/kernel/tracing/events/kvm
ALLOW_FAIL=",@ALLOW_FAIL@,"
# run NAME ROUND KILL_AT CMDLINE COMMAND: one timed run -> "BENCH NAME ROUND k=v..."
run() {
    n=$1 r=$2 kill=$3 cl=$4
    shift 4
    if [ -e /tmp/skip-$n ]; then
        echo "BENCH $n $r status=skipped"
        return
    fi
    limit=300
    case $ALLOW_FAIL in *",$n,"*) limit=120 ;; esac
    cmd=$(echo "$*" | sed "s|@C@|$cl|g")
    case $cmd in
        FC=*) k=${cmd%% *}; k=${k#FC=}; cmd=${cmd#* }
              sed -e "s|@BOOT_ARGS@|$cl|" /l2/fc-$k.json >/tmp/fc.json
              grep -q "\"boot_args\": \"$cl\"" /tmp/fc.json || echo "FAIL $n: boot_args not set in /tmp/fc.json" ;;
    esac
    case $cmd in
        COLD=1*) cmd=${cmd#COLD=1 }; rm -rf /tmp/xdg-cache-cold; export XDG_CACHE_HOME=/tmp/xdg-cache-cold ;;
        CACHE=b*) cmd=${cmd#CACHE=b }; export XDG_CACHE_HOME=/tmp/xdg-cache-b ;;
        *) export XDG_CACHE_HOME=/tmp/xdg-cache ;;
    esac
    marker=""
    [ -n "$kill" ] && marker="--marker L2-MARKER --kill-at $kill"
    eval "/kvm-floor stopwatch $marker --timeout $limit -- $cmd" >/tmp/out 2>/tmp/err
    line=$(grep '^stopwatch ' /tmp/out | sed 's/^stopwatch //')
    up=$(grep -m1 'L2-MARKER uptime=' /tmp/out | sed 's/.*uptime=\([0-9.]*\).*/\1/')
    echo "BENCH $n $r $line uptime=${up:-none}"
    if [ -n "$kill" ] && ! grep -q '^L2-MARKER uptime=' /tmp/out; then
        grep -v -e 'IO read @' -e 'IO write @' /tmp/out | tail -n 20 | sed "s/^/FAIL $n out: /"
        tail -n 20 /tmp/err | sed "s/^/FAIL $n err: /"
        case $ALLOW_FAIL in *",$n,"*) : >/tmp/skip-$n ;; esac
    fi
}
# timeline NAME COMMAND: one run whose L2 prints its whole kernel log.
timeline() {
    n=$1
    shift
    run "$n" tl L2-END "@CMDLINE@ pvhdmesg @TIMELINE_ARGS@" "$@"
    grep -e '^L2-DMESG' /tmp/out | sed "s/^L2-DMESG /TL $n /"
}
# prof NAME COMMAND: one run with KVM event histograms and the L2's diagnostics.
prof() {
    n=$1
    shift
    echo 'hist:keys=exit_reason:sort=hitcount.descending:size=256' >$T/kvm_exit/trigger
    echo 'hist:keys=reason' >$T/kvm_userspace_exit/trigger
    echo 'hist:keys=port,rw:sort=hitcount.descending' >$T/kvm_pio/trigger
    kill=""
    case $n in floor|pvh-exit|pvh-probe) ;; *) kill=L2-END ;; esac
    run "$n" prof "$kill" "@CMDLINE@ pvhdiag" "$@"
    grep -e '^L2-DIAG' -e '^stub' /tmp/out | sed "s/^/PROF $n /"
    for ev in kvm_exit kvm_userspace_exit kvm_pio; do
        grep -e '^{' -e '^Totals' -e 'Hits:' $T/$ev/hist | sed "s/^/PROF $n $ev /"
    done
    echo '!hist:keys=exit_reason:sort=hitcount.descending:size=256' >$T/kvm_exit/trigger
    echo '!hist:keys=reason' >$T/kvm_userspace_exit/trigger
    echo '!hist:keys=port,rw:sort=hitcount.descending' >$T/kvm_pio/trigger
}
L1
    # Round 0 warms up (and fills the pvh-unpack cache); --short runs only
    # round 1, which just has to boot.
    printf 'i=%d\nwhile [ $i -le %d ]; do\n' "$((short ? 1 : 0))" "$runs"
    for c in "${cases[@]}"; do
        IFS='|' read -r name vmm path command <<<"$c"
        kill=L2-MARKER reps=1
        # floor and pvh-exit (well under a second each in L1) run several
        # times a round: pvh-exit against the floor is a ratio of small
        # times. The Linux boots in between evict their code from TCG's
        # translation cache, which makes each group's first run several
        # times slower (translating the VMM and L1's KVM paths again): it
        # runs unrecorded (round "w"), like round 0.
        [[ $path == probe ]] && kill=""
        if [[ $path == exit ]]; then
            kill="" reps=$short_reps
            ((short)) || printf '    run %s w "" "@CMDLINE@" %q\n' "$name" "$command"
        fi
        for ((k = 0; k < reps; k++)); do
            printf '    run %s $i "%s" "@CMDLINE@" %q\n' "$name" "$kill" "$command"
        done
    done
    printf '    i=$((i + 1))\ndone\n'
    if ((profile)); then
        for c in "${cases[@]}"; do
            IFS='|' read -r name vmm path command <<<"$c"
            printf 'prof %s %q\n' "$name" "$command"
        done
    fi
    if ((timeline)); then
        for c in "${cases[@]}"; do
            IFS='|' read -r name vmm path command <<<"$c"
            [[ $path == exit || $path == probe ]] && continue
            printf 'timeline %s %q\n' "$name" "$command"
        done
    fi
    printf 'echo "L1-INFO keyboard interrupts (the keepalive) $(grep -m1 i8042 /proc/interrupts | tr -s " ")"\n'
    printf 'echo L1-BENCH-DONE\nreboot -f\n'
} | sed -e "s|@CMDLINE@|$cmdline|g" -e "s|@ALLOW_FAIL@|$allow_fail|" \
    -e "s|@TIMELINE_ARGS@|${PVH_TIMELINE_ARGS:-}|" >"$work/l1.init"

l1_files=("$pvh:/pvh" "$floor:/kvm-floor" "$work/exit.elf:/exit.elf"
    "$cache/vmlinux:/l2/vmlinux" "$cache/bzImage:/l2/bzImage" "$work/wrapped.elf:/l2/wrapped.elf"
    "$work/l2.cpio:/l2/initrd.cpio" "$cache/kmods/load-order:/kmods/load-order"
    "$peers/firecracker:/peers/firecracker" "$peers/cloud-hypervisor:/peers/cloud-hypervisor")
for k in vmlinux bzImage wrapped.elf; do l1_files+=("$work/fc-$k.json:/l2/fc-$k.json"); done
[[ -n ${PVH_COMPARE_BIN:-} ]] && l1_files+=("$PVH_COMPARE_BIN:/pvh-b")
mapfile -t kmods <"$cache/kmods/load-order"
for m in "${kmods[@]}"; do l1_files+=("$cache/kmods/$m:/kmods/$m"); done
# The peers' (and QEMU's) shared libraries, at their own paths.
libs=$( { ldd "$peers/firecracker"; ldd "$peers/cloud-hypervisor"; if ((with_qemu)); then ldd "$(command -v "$qemu")"; fi; } |
    awk '/=>/ {print $3} /^[[:space:]]*\/[^ ]*ld-linux/ {print $1}' | sort -u)
for l in $libs; do l1_files+=("$(readlink -f "$l"):$l"); done
if ((with_qemu)); then
    l1_files+=("$(command -v "$qemu"):/usr/bin/qemu-system-x86_64")
    for f in bios-microvm.bin qboot.rom linuxboot_dma.bin pvh.bin kvmvapic.bin; do
        [[ -e /usr/share/qemu/$f ]] && l1_files+=("$(readlink -f "/usr/share/qemu/$f"):/usr/share/qemu/$f")
    done
fi
"$script_dir/mkinitramfs.sh" "$work/l1.cpio" "$work/l1.init" "${l1_files[@]}" >/dev/null

log "booting L1 (QEMU TCG); $((runs + 1 - short)) rounds of ${#cases[@]} cases$( ((profile)) && echo ' and a profile pass')"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# L1 keepalive: a key press every 5 s through QEMU's monitor (IRQ 1 in
# L1; nothing in L1 reads the keyboard). Twice a whole run stopped for
# good with L1 idle and QEMU's vCPU asleep on HLT, the stopwatch's own
# 300 s watchdog never firing: L1 had lost its next timer interrupt
# (NOHZ, one-shot), which TCG's nested SVM can drop. Any interrupt makes
# L1 program its timer again. Not the serial port: the VMMs in L1 take
# their guests' console input from L1's console.
monitor=$work/monitor.sock
rm -f "$monitor"
timeout 7200 "$qemu" -M q35,accel=tcg -cpu EPYC -m 3072 -smp 1 -nographic -nodefaults \
    -serial stdio -no-reboot -kernel "$cache/vmlinux" -initrd "$work/l1.cpio" \
    -monitor "unix:$monitor,server=on,wait=off" \
    -append "console=ttyS0 panic=-1 quiet reboot=k" </dev/null >"$work/console.raw" 2>&1 &
qemu_pid=$!
(
    while kill -0 "$qemu_pid" 2>/dev/null; do
        sleep 5
        echo 'sendkey shift' | socat -T 2 - "UNIX-CONNECT:$monitor" >/dev/null 2>&1 || true
    done
) &
keepalive_pid=$!
wait "$qemu_pid" || true
kill "$keepalive_pid" 2>/dev/null
wait "$keepalive_pid" 2>/dev/null || true
tr -d '\r' <"$work/console.raw" >"$work/console.log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
grep -q L1-KVM-READY "$work/console.log" || die "L1 has no /dev/kvm (see $work/console.log)"
grep -q L1-BENCH-DONE "$work/console.log" || die "L1 did not finish (see $work/console.log)"

# Round 0 is the warm-up: dropped from the statistics, but it must boot too.
export runs
summary=$(
    for c in "${cases[@]}"; do
        IFS='|' read -r name vmm path _ <<<"$c"
        grep "^BENCH $name " "$work/console.log" | awk -v n="$name" -v vmm="$vmm" -v path="$path" '
        function val(k,   i, f) { for (i = 4; i <= NF; i++) { f = $i; if (index(f, k "=") == 1) return substr(f, length(k) + 2) } return "" }
        function sort(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x } }
        function med(a, n) { if (!n) return -1; sort(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        {
            st = val("status"); m = val("L2-MARKER_us"); round = $3
            if (st == "skipped") { skipped++; next }
            ok = (path == "exit" || path == "probe") ? (st == "0") : (st == "killed" && m != "none" && m != "")
            if (!ok) { bad++; next }
            good++
            if (round == "0" || round == "w" || round == "prof" || round == "tl") next
            t[++nt] = (m != "" ? m : val("total_us")) / 1000
            r[++nr] = val("maxrss_kib") / 1024
            u = val("uptime"); if (u != "none" && u != "") pre[++np] = t[nt] - u * 1000
            th = val("thp_kib"); if (th != "") thp[++nh] = th / 1024
            rs = val("rss_kib"); if (rs != "") rss[++ns] = rs / 1024
            cpu[++nc] = (val("utime_us") + val("stime_us")) / 1000
            flt[++nf] = val("minflt") + 0
        }
        END {
            mn = -1; mx = -1
            for (i = 1; i <= nt; i++) { if (mn < 0 || t[i] < mn) mn = t[i]; if (t[i] > mx) mx = t[i] }
            printf "%s %s %s %d %d %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %d\n", n, vmm, path, good, bad + 0,
                med(t, nt), mn, mx, med(pre, np), med(r, nr), med(rss, ns), med(thp, nh), med(cpu, nc), med(flt, nf)
        }'
    done
)
echo "$summary" >"$work/summary.txt"

bad=$(awk -v allow=",$allow_fail," '($5 > 0 || $4 == 0) && index(allow, "," $1 ",") == 0 {print $1 " (" $5 " failed, " $4 " ok)"}' <<<"$summary")
allowed_bad=$(awk -v allow=",$allow_fail," '($5 > 0 || $4 == 0) && index(allow, "," $1 ",") > 0 {print $1}' <<<"$summary" | tr '\n' ' ')
{
    echo "Nested boot: L1 = Debian $(cat "$cache/kernel-version" 2>/dev/null) under QEMU TCG (q35, -cpu EPYC, kvm-amd); L2 = the same kernel, 256 MiB, 1 vCPU, to its initramfs marker"
    echo "median of $runs interleaved rounds (after a warm-up round; floor and pvh-exit $short_reps runs a round); host $(nproc) CPUs, load average before: $load_before; after: $load_after"
    grep '^L1-INFO' "$work/console.log" | sed 's/^L1-INFO /L1: /'
    echo
    printf '%-16s %-17s %-8s %10s %10s %10s %8s %12s %9s %9s %9s %9s %8s\n' case vmm path "median ms" "min ms" "max ms" "x best" "pre-clock ms" "peak MiB" "RSS MiB" "THP MiB" "CPU ms" "faults"
    # x best: the case's median over the fastest other VMM's median on the same
    # path (pvh's linux and unpack paths: against the best peer's bzimage,
    # except in an A/B run, where pvh and pvh-b are compared on each path).
    awk '
        { n[NR] = $1; v[NR] = $2; p[NR] = $3; med[NR] = $6; ok[NR] = $4; line[NR] = $0
          if ($2 == "pvh-b") ab = 1 }
        END {
            for (i = 1; i <= NR; i++)
                cmp[i] = (!ab && (p[i] == "linux" || p[i] == "unpack" || p[i] == "unpack-cold")) ? "bzimage" : p[i]
            for (i = 1; i <= NR; i++) {
                best = -1
                for (j = 1; j <= NR; j++) if (p[j] == cmp[i] && v[j] != v[i] && v[j] != "floor" && ok[j] > 0 && (best < 0 || med[j] < best)) best = med[j]
                if (p[i] == "exit" && v[i] ~ /^pvh/) for (j = 1; j <= NR; j++) if (v[j] == "floor") best = med[j]
                split(line[i], f, " ")
                ratio = (best > 0 && f[6] > 0 && v[i] != "floor") ? sprintf("%.2f", f[6] / best) : "-"
                pre = (f[9] > 0) ? sprintf("%.0f", f[9]) : "-"
                rss = (f[11] > 0) ? sprintf("%.1f", f[11]) : "-"
                thp = (f[11] > 0) ? sprintf("%.1f", f[12]) : "-"
                if (f[4] == 0) { printf "%-16s %-17s %-8s %10s (did not boot: %d failed runs; see FAIL lines in console.log)\n", f[1], f[2], f[3], "-", f[5]; continue }
                printf "%-16s %-17s %-8s %10.1f %10.1f %10.1f %8s %12s %9.1f %9s %9s %9.1f %8d\n", f[1], f[2], f[3], f[6], f[7], f[8], ratio, pre, f[10], rss, thp, f[13], f[14]
            }
        }' <<<"$summary"
    echo
    echo "x best: median over the fastest other VMM's median on the same path (pvh-exit: over the floor; pvh linux/unpack: over the best peer's bzimage, or in an A/B run the other pvh's unpack)."
    echo "pre-clock: time to the marker minus the L2's /proc/uptime at the marker (VMM start, stub, decompressor, early boot before the clock)."
    echo "peak MiB: the VMM process's peak RSS; RSS and THP MiB: its resident and huge-page backed anonymous memory at the marker;"
    echo "CPU ms: user + system time of the VMM process in L1 (includes the guest's time in KVM_RUN); faults: its minor page faults (both wait4)."
    # The cache's goal is a ratio of two pvh paths run next to each other
    # in every round: the per-round ratio is steadier than the ratio of
    # medians, since the L2's own boot time drifts from round to round
    # for every VMM alike.
    if [[ " ${cases[*]} " == *" pvh-vmlinux|"* && " ${cases[*]} " == *" pvh-unpack|"* ]]; then
        echo
        grep -e '^BENCH pvh-vmlinux ' -e '^BENCH pvh-unpack ' "$work/console.log" | awk '
            function val(k,   i, f) { for (i = 4; i <= NF; i++) { f = $i; if (index(f, k "=") == 1) return substr(f, length(k) + 2) } return "" }
            function sort(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x } }
            function med(a, n) { sort(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            $3 ~ /^[1-9][0-9]*$/ && val("status") == "killed" && val("uptime") != "none" {
                m[$2, $3] = val("L2-MARKER_us") / 1000; u[$2, $3] = val("uptime") * 1000; rounds[$3] = 1 }
            END {
                for (k in rounds) if ((("pvh-vmlinux", k) in m) && (("pvh-unpack", k) in m)) {
                    r[++n] = m["pvh-unpack", k] / m["pvh-vmlinux", k]
                    dp[n] = (m["pvh-unpack", k] - u["pvh-unpack", k]) - (m["pvh-vmlinux", k] - u["pvh-vmlinux", k])
                    du[n] = u["pvh-unpack", k] - u["pvh-vmlinux", k] }
                if (!n) { print "pvh-unpack over pvh-vmlinux, round by round: no round where both booted"; exit }
                lo = hi = r[1]; for (i = 2; i <= n; i++) { if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
                printf "pvh-unpack over pvh-vmlinux, round by round (%d rounds; the cache goal is 1.05): median %.3f, min %.3f, max %.3f;\n", n, med(r, n), lo, hi
                printf "  median difference before the L2 clock %+.0f ms (the host side: map, check and load the cache entry), after it %+.0f ms (the L2 boot itself)\n", med(dp, n), med(du, n)
            }'
    fi
    if ((profile)); then
        echo
        echo "KVM exits in L1 per boot (profile pass; SVM exit codes in decimal: 1024 NPF, 123 IOIO, 114 CPUID, 124 MSR, 96 INTR, 100 VINTR, 120 HLT, 110 RDTSC, 129 VMMCALL, 78 #PF)"
        for c in "${cases[@]}"; do
            name=${c%%|*}
            # A case without profile lines (one that did not boot) prints "?":
            # grep finding nothing must not end the script (pipefail).
            total=$(grep "^PROF $name kvm_exit .*Hits:" "$work/console.log" | awk '{print $NF; exit}' || true)
            top=$(grep "^PROF $name kvm_exit {" "$work/console.log" | head -6 |
                sed 's/.*exit_reason: *\([0-9a-fx]*\) *} hitcount: *\([0-9]*\).*/\1:\2/' | tr '\n' ' ' || true)
            user=$(grep "^PROF $name kvm_userspace_exit {" "$work/console.log" |
                sed 's/.*reason: *\([0-9]*\) *} hitcount: *\([0-9]*\).*/\1:\2/' | tr '\n' ' ' || true)
            printf '%-16s total %-8s %s| to userspace (reason:count) %s\n' "$name" "${total:-?}" "$top" "$user"
        done
    fi
} | tee "$work/results.txt"

if [[ -n $allowed_bad ]]; then
    log "allowed to fail and did not boot: $allowed_bad(see FAIL lines in $work/console.log)"
fi
if [[ -n $bad ]]; then
    log "cases that did not reach their marker: $bad (see $work/console.log)"
    exit 1
fi
log "results in $work/results.txt, raw lines in $work/console.log"
