#!/usr/bin/env bash
# bench-speed.sh - every figure of docs/benchmarks.md's issue-15 sections in
# one command, for a quiet machine:
#
#   scripts/bench-speed.sh [RUNS] [--no-docs]        (RUNS default 5)
#
# 1. scripts/bench-nested.sh RUNS  Linux under pvh, Firecracker, Cloud
#                                  Hypervisor and QEMU, side by side in one
#                                  nested L1 (plus a profile pass)
# 2. scripts/bench-unpack.sh RUNS  pvh-unpack's decoders against xz, gzip
#                                  and zstd; the unpack cache vs the vmlinux
# 3. scripts/bench-launch.sh RUNS  pvh launch of 1..16 domains; planning cost
# 4. scripts/bench-nested.sh 3*RUNS --only pvh-vmlinux,pvh-unpack
#                                  the unpack cache's goal (a warm pvh-unpack
#                                  within 1.05x of the vmlinux) in L1, round
#                                  by round: a ratio of two pvh paths, which
#                                  needs more rounds than part 1 gives, and
#                                  costs about 2 minutes
#
# Prints everything and writes it to <target>/bench-speed/results.txt (one
# file per part next to it, and the L1 console logs of parts 1 and 4, with
# every raw line and the profile pass), with the machine, the commit and the load
# average before and after; then writes each part's tables into
# docs/benchmarks.md between its `<!-- bench-speed PART -->` and
# `<!-- /bench-speed PART -->` lines (--no-docs: leave the docs alone).
# A part that fails leaves its section as it was, and the script exits 1.
#
# Duration on an idle 2-core host with warm builds: about 20-30 minutes for
# RUNS=5, about 25 for RUNS=3 (the nested part is most of it; cold builds
# add about 10). See docs/benchmarks.md ("Running it").
set -uo pipefail
runs=5
docs=1
for a in "$@"; do
    case $a in
        --no-docs) docs=0 ;;
        [1-9]*) runs=$a ;;
        *) echo "usage: $0 [RUNS] [--no-docs]" >&2; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
out=$target/bench-speed
doc=$repo_root/docs/benchmarks.md
mkdir -p "$out"
t0=$SECONDS
failed=()

# part NAME SCRIPT [ARGS...]: runs SCRIPT ARGS (default: RUNS), its output (stdout and stderr) to
# the terminal and to $out/NAME.txt; its tables (stdout) to $out/NAME.tables.
# A failed part keeps its (partial) tables there for a look, and leaves
# $out/NAME.failed, so its section of the docs is not overwritten.
part() {
    local name=$1 script=$2
    shift 2
    (($#)) || set -- "$runs"
    "$script_dir/$script" "$@" 2> >(tee -a "$out/$name.txt" >&2) | tee "$out/$name.tables" | tee -a "$out/$name.txt" ||
        echo "exit status ${PIPESTATUS[0]}" >"$out/$name.failed"
}

# fill NAME FILE HEADER: the lines of docs/benchmarks.md between the two
# markers of NAME become HEADER and FILE in a code block.
fill() {
    local name=$1 file=$2 header=$3
    [[ -s $file ]] || return 0
    grep -q "^<!-- bench-speed $name -->\$" "$doc" || { echo "bench-speed: no section '$name' in $doc" >&2; return 1; }
    awk -v name="$name" -v file="$file" -v header="$header" '
        $0 == "<!-- bench-speed " name " -->" {
            print; print ""; print header; print ""; print "```"
            while ((getline l < file) > 0) print l
            print "```"; print ""; skip = 1; next }
        $0 == "<!-- /bench-speed " name " -->" { skip = 0 }
        !skip { print }' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
}

parts=(nested unpack launch cache-nested)
for n in "${parts[@]}"; do : >"$out/$n.txt"; rm -f "$out/$n.failed"; done
commit=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo '?')
machine="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# bench-speed $(date -u +%Y-%m-%dT%H:%MZ), commit $commit, RUNS=$runs"
    echo "# $machine; load average before: $load_before"
    echo
    part nested bench-nested.sh
    # bench-nested.sh keeps its raw lines (with the profile pass's L2
    # diagnostics) in one place that part 4 reuses: keep a copy per part.
    cp "$target/bench-nested/console.log" "$out/nested.console.log" 2>/dev/null
    echo
    part unpack bench-unpack.sh
    echo
    part launch bench-launch.sh
    echo
    part cache-nested bench-nested.sh $((runs * 3)) --no-profile --no-qemu --only pvh-vmlinux,pvh-unpack
    cp "$target/bench-nested/console.log" "$out/cache-nested.console.log" 2>/dev/null
    echo
    echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(((SECONDS - t0) / 60)) minutes"
} 2>&1 | tee "$out/results.txt"
# (the parts ran in a pipeline's subshell: their failures are in the files)
for n in "${parts[@]}"; do
    [[ -s $out/$n.tables && ! -e $out/$n.failed ]] || failed+=("$n")
done
# ok NAME: whether part NAME may write its sections of the docs.
ok() { [[ " ${failed[*]} " != *" $1 "* ]]; }

if ((docs)); then
    header="Measured by \`bash scripts/bench-speed.sh $runs\` on $(date -u +%Y-%m-%d), commit $commit; $machine; load average before: $load_before."
    if ok nested; then fill nested "$out/nested.tables" "$header"; fi
    if ok unpack; then
        # bench-unpack prints the decoders, then (from "pvh boot --plan") the cache.
        awk '/^pvh boot --plan/ {exit} {print}' "$out/unpack.tables" >"$out/unpack-decoders.tables"
        awk '/^pvh boot --plan/ {p = 1} p' "$out/unpack.tables" >"$out/unpack-cache.tables"
        fill decoders "$out/unpack-decoders.tables" "$header"
        fill cache "$out/unpack-cache.tables" "$header"
    fi
    if ok launch; then fill launch "$out/launch.tables" "$header"; fi
    if ok cache-nested; then fill cache-nested "$out/cache-nested.tables" "$header"; fi
    echo "bench-speed: tables written into $doc (git diff docs/benchmarks.md)" >&2
fi
echo "bench-speed: results in $out/results.txt" >&2
if ((${#failed[@]})); then
    echo "bench-speed: failed: ${failed[*]} (their sections in $doc are unchanged; partial tables in $out/NAME.tables)" >&2
    exit 1
fi
