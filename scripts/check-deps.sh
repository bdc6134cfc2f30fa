#!/usr/bin/env bash
# check-deps.sh - the toolstack library crates stay hypervisor-agnostic.
#
# A VMM that links pvh's library (to load a guest, parse a hyperlaunch
# tree, build ACPI tables) must not link KVM, a CLI parser, a device model
# or the guest programs. This fails when `cargo tree -e normal` of a
# library crate shows one of them: with default features none may appear;
# with every feature on, only kvm-bindings may (pvh-loader's optional `kvm`
# feature converts the vCPU state to kvm_regs/kvm_sregs).
# scripts/test.sh runs it. PVH_CHECK_DEPS_CRATES="a b" checks other crates
# (e.g. pvh-hypervisor, to see the check fail).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LIBRARIES=(${PVH_CHECK_DEPS_CRATES:-pvh-bootparams pvh-entry pvh-loader pvh-acpi pvh-bootdomains})
FORBIDDEN=(kvm-ioctls kvm-bindings clap vm-superio pvh-guests pvh-hypervisor)
ALLOWED_WITH_FEATURES=(kvm-bindings)

status=0
for crate in "${LIBRARIES[@]}"; do
    clean=1
    for mode in default all; do
        flags=()
        [[ $mode == all ]] && flags=(--all-features)
        tree=$(cargo tree -q -e normal -p "$crate" "${flags[@]}" --prefix none --format '{p}' |
            awk '{print $1}' | sort -u)
        for dep in "${FORBIDDEN[@]}"; do
            if [[ $mode == all ]] && [[ " ${ALLOWED_WITH_FEATURES[*]} " == *" $dep "* ]]; then
                continue
            fi
            if grep -qx "$dep" <<<"$tree"; then
                echo "check-deps: $crate ($mode features) depends on $dep:" >&2
                cargo tree -q -e normal -p "$crate" "${flags[@]}" -i "$dep" >&2 || true
                status=1
                clean=0
            fi
        done
    done
    if ((clean)); then
        echo "check-deps: $crate: none of ${FORBIDDEN[*]}"
    fi
done
exit "$status"
