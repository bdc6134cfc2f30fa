#!/usr/bin/env bash
# conformance.sh - the PVH conformance matrix in one command: boots the probe
# guest (pvh-probe) under every PVH hypervisor available here - pvh, QEMU
# microvm (qboot), QEMU q35 (SeaBIOS's PVH option ROM), Xen 4.17 as a PVH
# dom0 builder (under QEMU TCG), Firecracker and Cloud Hypervisor (from
# $PVH_PEERS, default ../shared/peers next to the repository) - with the
# same command line and two modules, and prints the matrix of rules
# (pvh_entry::conformance) x hypervisors as Markdown, then the note of every
# cell that is not PASS. See docs/conformance.md.
#
#   scripts/conformance.sh            # print the matrix
#   scripts/conformance.sh --check    # and compare it with docs/conformance.md
#
# The same runs are part of scripts/test.sh (tests/tests/conformance_matrix.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >&2
bash scripts/fetch-artifacts.sh >&2
exec cargo run --quiet -p pvh-tests --bin pvh-conformance -- "$@"
