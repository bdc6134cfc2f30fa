#!/usr/bin/env bash
# dmesg-diff.sh - where two L2 boots of the nested benchmark spend their
# kernel-clock time differently.
#
#   scripts/dmesg-diff.sh CASE_A CASE_B [LOG] [TOP]
#
# Reads the timeline pass of `scripts/bench-nested.sh --timeline` (lines
# "TL CASE [ seconds] message" in LOG, default
# <target>/bench-nested/console.log), lines the two kernel logs up by
# message (numbers and addresses masked, so "Memory: 230000K" matches
# "Memory: 229000K"), and prints the TOP (default 15) stretches between
# consecutive matched lines whose durations differ the most, then both
# logs' last timestamps. A stretch is "from line X to line Y took a ms
# under A and b ms under B".
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${CARGO_TARGET_DIR:-$script_dir/../target}
a=${1:?usage: $0 CASE_A CASE_B [LOG] [TOP]}
b=${2:?usage: $0 CASE_A CASE_B [LOG] [TOP]}
log=${3:-$target/bench-nested/console.log}
top=${4:-15}
[[ -f $log ]] || { echo "dmesg-diff: $log not found (run scripts/bench-nested.sh --timeline)" >&2; exit 1; }

python3 - "$log" "$a" "$b" "$top" <<'PY'
import difflib, re, sys

path, a, b, top = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
line_re = re.compile(r"^TL (\S+) \[\s*(\d+\.\d+)\] (.*)$")
logs = {a: [], b: []}
with open(path, errors="replace") as f:
    for raw in f:
        m = line_re.match(raw.rstrip("\n"))
        if m and m.group(1) in logs:
            logs[m.group(1)].append((float(m.group(2)), m.group(3)))
for case, lines in logs.items():
    if not lines:
        sys.exit(f"dmesg-diff: no timeline lines for {case} in {path}")

def mask(msg):
    msg = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8,}\b", "#", msg)
    return re.sub(r"\d+", "#", msg)

# Printed text comes from the guests' logs: non-printable bytes escaped.
def show(msg, width=60):
    msg = msg.encode("unicode_escape", "backslashreplace").decode("ascii")
    return msg if len(msg) <= width else msg[: width - 3] + "..."

ka = [mask(m) for _, m in logs[a]]
kb = [mask(m) for _, m in logs[b]]
matcher = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
pairs = [(blk.a + k, blk.b + k) for blk in matcher.get_matching_blocks() for k in range(blk.size)]
stretches = []
for (i0, j0), (i1, j1) in zip(pairs, pairs[1:]):
    da = logs[a][i1][0] - logs[a][i0][0]
    db = logs[b][j1][0] - logs[b][j0][0]
    stretches.append((da - db, da, db, logs[a][i0][1], logs[a][i1][1]))
print(f"{len(pairs)} of {len(ka)} ({a}) and {len(kb)} ({b}) lines matched")
print(f"{'diff ms':>8} {a + ' ms':>10} {b + ' ms':>10}  from -> to")
for d, da, db, x, y in sorted(stretches, key=lambda s: -abs(s[0]))[:top]:
    print(f"{d * 1000:8.1f} {da * 1000:10.1f} {db * 1000:10.1f}  {show(x)} -> {show(y)}")
print(f"last line: {a} {logs[a][-1][0]:.3f} s, {b} {logs[b][-1][0]:.3f} s")
PY
