#!/usr/bin/env bash
# bench-unpack.sh - pvh-unpack's decoders against the C tools, and the
# unpack cache, on Debian's kernel.
#
#   scripts/bench-unpack.sh [RUNS]        (default 5)
#
# 1. Decompression: the payload of Debian's bzImage (xz, as Debian ships
#    it) and Debian's vmlinux compressed as Linux's build does for the
#    other formats (gzip -n -9; zstd -19, Linux uses -22 --ultra, which
#    changes the ratio, not the decoder's speed). For each, side by side:
#    `xz -dc` / `gzip -dc` / `zstd -dc` of the stream to /dev/null, and the
#    loader's decoder (`pvh_loader::image::decompress`, through
#    `examples/decompress.rs`) into memory, as pvh-unpack does. Best and
#    median of RUNS, uncompressed MB/s, and pvh's speed as a fraction of
#    the C tool's (1.00 = as fast).
# 2. The unpack cache: `pvh boot --plan` (plans and loads nothing into a
#    VM, but unpacks) of the bzImage with --boot-protocol pvh-unpack, cold
#    (empty cache) and warm, against `pvh boot --plan` of the vmlinux, RUNS
#    interleaved rounds each; the warm/vmlinux ratio is the cache's goal
#    (within 1.05x).
#
# Builds what it needs (cargo build --release). Artifacts:
# scripts/fetch-artifacts.sh (run if missing). Scratch files:
# <target>/bench-unpack/.
set -euo pipefail

runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
cache=${PVH_ARTIFACTS:-$repo_root/target/pvh-artifacts}
work=$target/bench-unpack
mkdir -p "$work"

log() { printf 'bench-unpack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
for tool in xz gzip zstd od dd; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup.sh installs it)"
done
if [[ ! -f $cache/vmlinux || ! -f $cache/bzImage ]]; then
    log "artifacts missing, running fetch-artifacts.sh"
    PVH_ARTIFACTS=$cache "$script_dir/fetch-artifacts.sh" >&2
fi

log "building pvh and the decompress example (release)"
(cd "$repo_root" && cargo build --release -q -p pvh-hypervisor --bin pvh &&
    cargo build --release -q -p pvh-loader --example decompress) || die "cargo build failed"
pvh=$target/release/pvh
decompress=$target/release/examples/decompress

u32_at() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }

# Debian's own payload: setup_sects at 0x1f1, payload_offset (from the
# protected-mode code) at 0x248, payload_length at 0x24c; the payload ends
# with the le32 uncompressed size.
bz=$cache/bzImage
setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
((setup_sects)) || setup_sects=4
off=$(( (setup_sects + 1) * 512 + $(u32_at "$bz" $((0x248))) ))
len=$(u32_at "$bz" $((0x24c)))
dd if="$bz" of="$work/xz.payload" bs=4096 iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
head -c $((len - 4)) "$work/xz.payload" >"$work/xz.stream"
raw_len=$(stat -c %s "$cache/vmlinux")
[[ $(u32_at "$work/xz.payload" $((len - 4))) == "$raw_len" ]] ||
    die "Debian's payload does not unpack to the size of the vmlinux artifact"

for f in gzip zstd; do
    if [[ ! -s $work/$f.payload || $work/$f.payload -ot $cache/vmlinux ]]; then
        log "compressing the vmlinux with $f"
        case $f in
            gzip) gzip -n -9 -c "$cache/vmlinux" >"$work/$f.stream" ;;
            zstd) zstd -q -19 -c "$cache/vmlinux" >"$work/$f.stream" ;;
        esac
        { cat "$work/$f.stream"; le32 "$raw_len"; } >"$work/$f.payload"
    fi
done

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
stats() { sort -n | awk '{v[NR] = $1} END {printf "%d %d\n", v[1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "Decompression of Debian's kernel ($raw_len bytes unpacked), best and median of $runs; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %14s %14s %12s %14s %14s %12s %8s\n' format "in bytes" "C best ms" "C median ms" "C MB/s" "pvh best ms" "pvh median ms" "pvh MB/s" "pvh/C"
for f in xz gzip zstd; do
    : >"$work/$f.c.times"
    : >"$work/$f.pvh.times"
    for ((i = 0; i < runs; i++)); do
        t0=$(now_us)
        "$f" -dc "$work/$f.stream" >/dev/null
        t1=$(now_us)
        echo $((t1 - t0)) >>"$work/$f.c.times"
        line=$("$decompress" "$f" "$work/$f.payload" 1)
        [[ $line == *" out=$raw_len "* ]] || die "pvh's $f decoder: $line"
        ms=${line##*median_ms=}
        awk -v ms="$ms" 'BEGIN {printf "%d\n", ms * 1000}' >>"$work/$f.pvh.times"
    done
    read -r cb cm < <(stats <"$work/$f.c.times")
    read -r pb pm < <(stats <"$work/$f.pvh.times")
    awk -v f="$f" -v in_="$(stat -c %s "$work/$f.payload")" -v raw="$raw_len" -v cb="$cb" -v cm="$cm" -v pb="$pb" -v pm="$pm" 'BEGIN {
        printf "%-6s %10d %14.1f %14.1f %12.1f %14.1f %14.1f %12.1f %8.2f\n", f, in_, cb / 1000, cm / 1000, raw / cm, pb / 1000, pm / 1000, raw / pm, cm / pm }'
done
echo "pvh/C: the C tool's median time over pvh's (1.00 = as fast; above 1 = pvh faster)."

# The cache: cold (fresh cache directory each run) and warm, against the vmlinux.
echo
echo "pvh boot --plan, process start to exit, best and median of $runs interleaved rounds"
printf '%-22s %10s %12s %10s\n' case "best ms" "median ms" "x vmlinux"
xdg=$work/xdg
declare -A cmd=(
    [vmlinux]="$pvh boot --plan --kernel $cache/vmlinux"
    [pvh-unpack-cold]="$pvh boot --plan --kernel $bz --boot-protocol pvh-unpack"
    [pvh-unpack-warm]="$pvh boot --plan --kernel $bz --boot-protocol pvh-unpack"
    [pvh-unpack-nocache]="$pvh boot --plan --kernel $bz --boot-protocol pvh-unpack --no-unpack-cache"
)
order=(vmlinux pvh-unpack-cold pvh-unpack-warm pvh-unpack-nocache)
rm -rf "$xdg"
XDG_CACHE_HOME=$xdg/warm ${cmd[pvh-unpack-warm]} >/dev/null # fill the warm cache
for c in "${order[@]}"; do : >"$work/$c.times"; done
for ((i = 0; i < runs; i++)); do
    for c in "${order[@]}"; do
        dir=$xdg/warm
        [[ $c == pvh-unpack-cold ]] && { rm -rf "$xdg/cold"; dir=$xdg/cold; }
        t0=$(now_us)
        XDG_CACHE_HOME=$dir ${cmd[$c]} >/dev/null || die "$c failed"
        t1=$(now_us)
        echo $((t1 - t0)) >>"$work/$c.times"
    done
done
read -r _ base < <(stats <"$work/vmlinux.times")
for c in "${order[@]}"; do
    read -r b m < <(stats <"$work/$c.times")
    awk -v c="$c" -v b="$b" -v m="$m" -v base="$base" 'BEGIN {printf "%-22s %10.1f %12.1f %10.2f\n", c, b / 1000, m / 1000, m / base}'
done
echo "cache entry: $(du -b "$xdg"/warm/pvh/unpacked/*.unpacked | awk '{print $1}') bytes in $xdg/warm/pvh/unpacked"
rm -rf "$xdg"
