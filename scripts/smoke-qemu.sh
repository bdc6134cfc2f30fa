#!/usr/bin/env bash
# smoke-qemu.sh - prove that this machine can boot the real guest artifacts
# the pvh tests rely on (software emulation, no KVM needed):
#   1. vmlinux (PVH ELF) on -M microvm   (qboot builds start_info)
#   2. vmlinux (PVH ELF) on -M q35       (SeaBIOS pvh.bin option ROM)
#   3. bzImage            on -M q35       (classic Linux boot protocol)
#   4. Xen 4.17 on -M pc with vmlinux as PVH dom0 (informational only)
# Each Linux guest runs a busybox /init that prints PVH-SMOKE-MARKER and
# /proc/cmdline, then `reboot -f` (reboot=k + -no-reboot makes QEMU exit).
# Exits non-zero if a QEMU case (1-3) does not print the marker.
#
# Artifacts come from scripts/fetch-artifacts.sh (run first if missing).
# Logs are kept in $PVH_ARTIFACTS/smoke/ (default <repo>/target/pvh-artifacts).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || dirname "$script_dir")
cache=${PVH_ARTIFACTS:-$repo_root/target/pvh-artifacts}
marker=PVH-SMOKE-MARKER
qemu=${QEMU:-qemu-system-x86_64}

log() { printf 'smoke: %s\n' "$*"; }

if [[ ! -f $cache/vmlinux || ! -f $cache/bzImage || ! -f $cache/xen ]]; then
    log "artifacts missing, running fetch-artifacts.sh"
    PVH_ARTIFACTS=$cache "$script_dir/fetch-artifacts.sh"
fi
command -v "$qemu" >/dev/null 2>&1 || { log "$qemu not found; run scripts/setup.sh"; exit 1; }

work=$cache/smoke
mkdir -p "$work"

cat >"$work/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
echo $marker
cat /proc/cmdline
reboot -f
EOF
"$script_dir/mkinitramfs.sh" "$work/initrd.cpio" "$work/init" >/dev/null

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# run_case NAME TIMEOUT STOP_ON_MARKER -- QEMU ARGS...
# Runs QEMU with output in $work/NAME.log, polls for the marker, and sets
# case_marker_s (seconds to marker, or "-") and case_total_s (seconds until
# QEMU ended). With STOP_ON_MARKER=1, QEMU is stopped 2 s after the marker.
run_case() {
    local name=$1 tmo=$2 stop=$3
    shift 4
    local logf=$work/$name.log start pid t seen_at="" rc=0
    : >"$logf"
    start=$(now)
    timeout "$tmo" "$@" </dev/null >"$logf" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -z $seen_at ]] && grep -qa "$marker" "$logf"; then
            seen_at=$(now)
        fi
        if [[ -n $seen_at && $stop == 1 ]] &&
            awk -v a="$seen_at" -v b="$(now)" 'BEGIN { exit !(b - a > 2) }'; then
            kill "$pid" 2>/dev/null || true
        fi
        sleep 0.1
    done
    wait "$pid" || rc=$?
    t=$(now)
    if [[ -z $seen_at ]] && grep -qa "$marker" "$logf"; then
        seen_at=$t
    fi
    case_total_s=$(elapsed "$start" "$t")
    case_rc=$rc
    if [[ -n $seen_at ]]; then
        case_marker_s=$(elapsed "$start" "$seen_at")
    else
        case_marker_s=-
    fi
}

cmdline="console=ttyS0 panic=-1 quiet reboot=k"
common=(-cpu EPYC -m 512 -nographic -nodefaults -serial stdio -no-reboot
    -initrd "$work/initrd.cpio" -append "$cmdline")

failed=0
results=()
qemu_case() {
    local name=$1
    shift
    log "booting $name"
    run_case "$name" 60 0 -- "$qemu" "$@" "${common[@]}"
    local status=ok
    if [[ $case_marker_s == - ]]; then
        status=FAIL
        failed=1
        log "$name: no marker; last lines of $work/$name.log:"
        tail -n 15 "$work/$name.log" | sed 's/^/    /'
    else
        grep -a -A1 "$marker" "$work/$name.log" | tail -n1 | tr -d '\r' | sed 's/^/    cmdline: /'
    fi
    results+=("$(printf '%-16s %-4s marker %6ss  qemu exit %6ss (rc %s)' \
        "$name" "$status" "$case_marker_s" "$case_total_s" "$case_rc")")
}

qemu_case microvm-vmlinux -M microvm,accel=tcg -kernel "$cache/vmlinux"
qemu_case q35-vmlinux -M q35,accel=tcg -kernel "$cache/vmlinux"
qemu_case q35-bzImage -M q35,accel=tcg -kernel "$cache/bzImage"

# --- Xen: vmlinux as a PVH dom0 (HAP needs -cpu max; Debian's Xen has no
# shadow paging). Multiboot modules: "kernel cmdline..." then the initrd; a
# module's cmdline must not contain commas (QEMU's -initrd separator).
# Two workarounds, both needed under TCG (seen with QEMU 7.2 + Xen 4.17):
#  - `-cpu max,-rdtscp`: TCG reports an intercepted RDTSCP as an RDTSC exit;
#    Xen's SVM insn-length check rejects it and crashes dom0 ("Insn mismatch:
#    Expected opcode 0xf0031 ... 0f 01 f9").
#  - guest `acpi=off`: with ACPI, dom0 Linux stops making progress right after
#    "ACPI: Core revision 20220331" (nothing more within 90 s).
log "booting xen-dom0 (informational)"
xen_args="loglvl=all guest_loglvl=all noreboot console_timestamps=boot"
xen_args+=" console=com1 dom0-iommu=none dom0=pvh dom0_mem=256M"
run_case xen-dom0 90 1 -- "$qemu" -accel tcg -cpu max,-rdtscp -M pc -smp 2 -m 2048 \
    -no-reboot -nographic -nodefaults -monitor none -serial stdio \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$cache/xen" \
    -initrd "$cache/vmlinux console=hvc0 earlyprintk=xen panic=-1 reboot=k acpi=off,$work/initrd.cpio" \
    -append "$xen_args"
xlog=$work/xen-dom0.log
xen_status="no-dom0"
if grep -qa "$marker" "$xlog"; then
    xen_status="marker-seen"
elif grep -qaE 'Linux version' "$xlog"; then
    xen_status="linux-started"
elif grep -qaE '\*\*\* Building a PVH Dom0|Dom0 kernel' "$xlog"; then
    xen_status="dom0-built"
fi
results+=("$(printf '%-16s %-13s marker %6ss  qemu end %6ss (rc %s)' \
    xen-dom0 "$xen_status" "$case_marker_s" "$case_total_s" "$case_rc")")
log "xen key lines:"
grep -aE 'Xen version|PVH Dom0|Error|Linux version|Kernel command line|Run /init|Dom0 (shutdown|crashed)|'"$marker" "$xlog" |
    tr -d '\r' | head -n 20 | sed 's/^/    /' || true

echo
log "summary (logs in $work):"
printf '  %s\n' "${results[@]}"
exit "$failed"
