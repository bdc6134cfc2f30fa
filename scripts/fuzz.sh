#!/usr/bin/env bash
# fuzz.sh - run every pvh fuzz target with cargo-fuzz (libFuzzer + ASan on
# nightly) and record what happened.
#
#   scripts/fuzz.sh [--runs N | --time SECS] [--targets "elf acpi ..."]
#                   [--results FILE] [--minimize] [--max-len BYTES]
#
#   --runs N       stop each target after N executions (default 100000)
#   --time SECS    stop each target after SECS seconds instead
#   --targets      a subset (names as listed by --list)
#   --results FILE where the results table goes (default
#                  target/fuzz/results.md); appended to, one table per run
#   --minimize     afterwards, rebuild the committed corpus (fuzz/corpus/<t>,
#                  loader/fuzz/corpus/<t>) with libFuzzer's merge: the
#                  seed-* and regression-* files, plus every input of the
#                  old and new corpora that adds coverage to them
#   --max-len N    longest input libFuzzer makes (default 4096)
#   --list         print the targets and exit
#
# Installs what it needs when missing: the nightly toolchain, its
# x86_64-unknown-none target (fuzz/ builds pvh-hypervisor, which builds
# the guest programs) and cargo-fuzz (from crates.io). The committed corpus
# is read, never written, unless --minimize; new inputs go to
# target/fuzz/corpus/<t>, findings (crash-*, timeout-*, oom-*, leak-*) to
# target/fuzz/artifacts/<t>/, logs to target/fuzz/logs/<t>.log. The exit
# status is 1 if any target had a finding or failed to run.
#
# A finding becomes a regression test: copy it into the committed corpus
# as regression-<what> (tests/tests/fuzz_corpus.rs replays every corpus
# file on stable) and fix it. The campaign (10 million executions per
# target) is `scripts/fuzz.sh --runs 10000000 --minimize --results
# docs/fuzzing-results.md`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# crate directory:target
ALL_TARGETS=(
    fuzz:start_info
    fuzz:translate
    fuzz:bzimage_header
    fuzz:bootfdt
    fuzz:payload
    fuzz:acpi
    fuzz:inspect
    loader/fuzz:elf
    loader/fuzz:bzimage
)

runs=100000
time_limit=
only=
results=target/fuzz/results.md
minimize=0
max_len=4096

while (($#)); do
    case $1 in
    --runs) runs=$2; time_limit=; shift 2 ;;
    --time) time_limit=$2; runs=; shift 2 ;;
    --targets) only=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --minimize) minimize=1; shift ;;
    --max-len) max_len=$2; shift 2 ;;
    --list)
        for t in "${ALL_TARGETS[@]}"; do echo "${t#*:}"; done
        exit 0
        ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    *) echo "fuzz: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'fuzz: %s\n' "$*"; }

# --- Tools -------------------------------------------------------------------
if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! rustup target list --installed --toolchain nightly | grep -qx x86_64-unknown-none; then
    log "adding x86_64-unknown-none to nightly"
    rustup target add x86_64-unknown-none --toolchain nightly
fi
if ! rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
    # cargo-fuzz builds the standard library with the sanitizer (-Zbuild-std).
    log "adding rust-src to nightly"
    rustup component add rust-src --toolchain nightly
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

out=target/fuzz
mkdir -p "$out/logs" "$out/corpus" "$out/artifacts" "$(dirname "$results")"
# One target directory for both fuzz crates: their dependencies are built
# once with the fuzzing flags.
build_dir=$PWD/$out/build

limit_desc=${runs:+$runs runs}${time_limit:+$time_limit s}
{
    echo
    echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ): $limit_desc per target, max_len $max_len"
    echo
    echo "| target | runs | exec/s | coverage (cov / ft) | corpus (files) | peak RSS | findings |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
} >>"$results"

failed=0
for spec in "${ALL_TARGETS[@]}"; do
    crate=${spec%%:*}
    name=${spec#*:}
    if [[ -n $only && " $only " != *" $name "* ]]; then
        continue
    fi
    committed=$crate/corpus/$name
    work=$out/corpus/$name
    artifacts=$out/artifacts/$name
    logfile=$out/logs/$name.log
    mkdir -p "$committed" "$work" "$artifacts"
    rm -f "$artifacts"/*
    args=(-max_len="$max_len" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$PWD/$artifacts/" -print_final_stats=1)
    if [[ -n $time_limit ]]; then
        args+=(-max_total_time="$time_limit")
    else
        args+=(-runs="$runs")
    fi
    log "$name: ${limit_desc}"
    status=0
    cargo +nightly fuzz run --fuzz-dir "$crate" --target-dir "$build_dir" "$name" \
        "$work" "$committed" -- "${args[@]}" >"$logfile" 2>&1 || status=$?

    stat() { grep -o "stat::$1: *[0-9]*" "$logfile" | tail -1 | grep -o '[0-9]*$' || true; }
    executed=$(stat number_of_executed_units)
    speed=$(stat average_exec_per_sec)
    rss=$(stat peak_rss_mb)
    cov=$(grep -o 'cov: [0-9]*' "$logfile" | tail -1 | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' "$logfile" | tail -1 | grep -o '[0-9]*' || true)
    corpus=$(find "$work" "$committed" -type f | wc -l)
    found=$(find "$artifacts" -type f | wc -l)
    if ((found > 0)); then
        what=$(find "$artifacts" -type f -printf '%f ' | sed 's/ $//')
        failed=1
    elif ((status != 0)); then
        what="run failed (status $status, see $logfile)"
        failed=1
    else
        what=none
    fi
    echo "| $name | ${executed:-?} | ${speed:-?} | ${cov:-?} / ${ft:-?} | $corpus | ${rss:-?} MB | $what |" >>"$results"
    log "$name: ${executed:-?} runs, ${speed:-?}/s, cov ${cov:-?}, corpus $corpus, findings: $what"

    if ((minimize)); then
        # libFuzzer's merge: start from the named files (seeds and
        # regressions, always kept), add whatever input of the committed
        # and new corpora covers something they do not.
        fresh=$out/merge/$name
        rm -rf "$fresh"
        mkdir -p "$fresh"
        find "$committed" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regression-*' \) \
            -exec cp {} "$fresh"/ \;
        cargo +nightly fuzz run --fuzz-dir "$crate" --target-dir "$build_dir" "$name" \
            "$fresh" "$committed" "$work" -- -merge=1 -max_len="$max_len" >>"$logfile" 2>&1
        rm -rf "$committed"
        mv "$fresh" "$committed"
        log "$name: committed corpus minimized to $(find "$committed" -type f | wc -l) files"
    fi
done

log "results in $results"
exit $failed
