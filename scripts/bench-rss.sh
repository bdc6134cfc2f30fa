#!/usr/bin/env bash
# bench-rss.sh - peak RSS of `pvh` over issue 14's hostile inputs, and of
# planning + loading a real kernel and initrd (issue 11), in one run.
#
#   bash scripts/bench-rss.sh            # every case, with peak RSS
#   bash scripts/bench-rss.sh --short    # verdicts only (scripts/test.sh)
#
# The hostile cases (hypervisor/tests/hostile/, made at run time: sparse
# files, FIFOs, /dev/zero, a bzImage announcing 1 GiB, gzip/xz/zstd bombs,
# a huge and an endless device tree, 4097 modules, a 64 KiB command line,
# wrap/inspect of a 5 GiB file) run as `pvh boot --plan --memory 64M ...`
# (launch/wrap/inspect for theirs): every one must end with its typed exit
# status and message. None of them creates a VM, so no guest RAM is
# touched and "peak RSS minus guest RAM touched" is the peak RSS itself
# (/usr/bin/time's maximum resident set size of the child).
#
# PVH_COMPARE_BIN=/path/to/old/pvh runs every case with that binary too
# (the pre-change `pvh`, e.g. main's target/debug/pvh), side by side, under
# a virtual-memory cap of PVH_COMPARE_CAP_MIB (default 4096) and a
# 120-second timeout, since the old binary reads some inputs without bound.
#
# The load case (loader/examples/rss_load.rs) plans and loads
# $PVH_ARTIFACTS/vmlinux (Debian's, 65 MB) and a 32 MiB initrd into 512 MiB
# of guest RAM through the library, once with the inputs mapped (Input)
# and once read onto the heap (std::fs::read, as before), and reports the
# peak RSS, the guest pages, the input files' mapped pages and the
# anonymous memory.
#
# Memory is not timing: figures from a loaded machine are valid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

short=0
case "${1:-}" in
    --short) short=1 ;;
    "") ;;
    *) echo "usage: $0 [--short]" >&2; exit 64 ;;
esac

cargo build -q -p pvh-hypervisor --bin pvh --example hostile_inputs
cargo build -q -p pvh-loader --example rss_load
target="${CARGO_TARGET_DIR:-target}/debug"
pvh="$target/pvh"

dir=$(mktemp -d)
feeder=""
cleanup() {
    if [ -n "$feeder" ]; then kill "$feeder" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

# Short: small bombs (the verdict does not depend on their size).
bomb_mib=$([ "$short" = 1 ] && echo 8 || echo 256)
"$target/examples/hostile_inputs" "$dir" 3 "$bomb_mib" > "$dir/cases.tsv"

# run BIN N FIFO CAP_KIB: runs case N with BIN; sets $status, $peak_kib;
# its stderr is in $dir/stderr.
run() {
    local bin=$1 n=$2 fifo=$3 cap=$4
    local -a args
    mapfile -d '' args < "$dir/case-$n.args"
    if [ "$fifo" != - ]; then
        # Feeds the FIFO until its reader goes (SIGPIPE) or we stop it.
        cat /dev/zero > "$fifo" &
        feeder=$!
    fi
    set +e
    (
        if [ "$cap" != 0 ]; then ulimit -v "$cap"; fi
        exec timeout 120 /usr/bin/time -f '%M' -o "$dir/time" \
            "$bin" "${args[@]}" > /dev/null 2> "$dir/stderr"
    )
    status=$?
    set -e
    if [ -n "$feeder" ]; then
        kill "$feeder" 2>/dev/null || true
        wait "$feeder" 2>/dev/null || true
        feeder=""
    fi
    peak_kib=$(grep -E '^[0-9]+$' "$dir/time" 2>/dev/null | tail -1 || true)
    peak_kib=${peak_kib:-?}
}

mib() { [ "$1" = "?" ] && echo "?" || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

failures=0
if [ "$short" = 0 ]; then
    printf '%-38s %6s %12s' "case" "status" "peak RSS MiB"
    [ -n "${PVH_COMPARE_BIN:-}" ] && printf ' | %-16s %12s' "before: status" "peak RSS MiB"
    printf '   %s\n' "what bounds it"
fi
while IFS=$'\t' read -r n want fifo name bound message; do
    run "$pvh" "$n" "$fifo" 0
    if [ "$status" != "$want" ] || ! grep -qF -- "$message" "$dir/stderr" || grep -q panicked "$dir/stderr"; then
        echo "bench-rss: FAIL: $name: status $status (want $want); stderr:" >&2
        head -c 2000 "$dir/stderr" >&2
        echo "  want the message: $message" >&2
        failures=$((failures + 1))
    fi
    if [ "$short" = 1 ]; then
        echo "bench-rss: $name: status $status"
        continue
    fi
    printf '%-38s %6s %12s' "$name" "$status" "$(mib "$peak_kib")"
    if [ -n "${PVH_COMPARE_BIN:-}" ]; then
        run "$PVH_COMPARE_BIN" "$n" "$fifo" $(( ${PVH_COMPARE_CAP_MIB:-4096} * 1024 ))
        printf ' | %-16s %12s' "$status" "$(mib "$peak_kib")"
    fi
    printf '   %s\n' "$bound"
done < "$dir/cases.tsv"

if [ "$failures" != 0 ]; then
    echo "bench-rss: $failures case(s) without their verdict" >&2
    exit 1
fi
if [ "$short" = 1 ]; then
    echo "bench-rss: every hostile input got its typed verdict"
    exit 0
fi

# Planning + loading a real kernel and initrd.
vmlinux="${PVH_ARTIFACTS:-target/pvh-artifacts}/vmlinux"
if [ ! -f "$vmlinux" ]; then
    echo "bench-rss: no $vmlinux (scripts/fetch-artifacts.sh fetches it); load case skipped"
    exit 0
fi
head -c $((32 << 20)) /dev/urandom > "$dir/initrd"
echo
echo "plan + load of $(basename "$vmlinux") ($(stat -c %s "$vmlinux") bytes) + a 32 MiB initrd into 512 MiB (MiB):"
printf '%-22s %9s %9s %13s %9s %22s %14s\n' "inputs" "peak RSS" "guest" "input pages" "anon" "peak-guest-input pages" "anon-guest"
for mode in mapped read; do
    flag=$([ "$mode" = read ] && echo --read || true)
    read -r peak guest inputs anon < <("$target/examples/rss_load" "$vmlinux" "$dir/initrd" 512 $flag)
    label=$([ "$mode" = read ] && echo "read (std::fs::read)" || echo "mapped (Input)")
    printf '%-22s %9s %9s %13s %9s %22s %14s\n' "$label" "$(mib "$peak")" "$(mib "$guest")" \
        "$(mib "$inputs")" "$(mib "$anon")" "$(mib $((peak - guest - inputs)))" "$(mib $((anon - guest)))"
done
