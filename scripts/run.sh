#!/usr/bin/env bash
# run.sh - the main job from a fresh machine, in one command: installs what
# the build needs (scripts/setup.sh), builds pvh and its built-in probe
# guest, and boots the probe on this machine's KVM with `pvh boot` (no
# arguments: the embedded default). The probe prints, one key=value line
# each, everything it was given: start_info fields, command line, modules,
# memory map, RSDP, and the Linux zero page pvh's translation makes of them.
# Extra arguments go to `pvh boot` (for example: --memory 256M --cmdline x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >&2
cargo build --release -p pvh-hypervisor --bin pvh >&2
exec target/release/pvh boot "$@"
