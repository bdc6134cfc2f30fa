#!/usr/bin/env bash
# setup.sh - install everything the pvh test suite needs on a fresh Debian 12
# machine: the Debian packages used to build/boot real guests (QEMU, Xen
# headers, busybox for initramfs, archive tools, kmod for modinfo, ACPICA's
# iasl to check generated ACPI tables, tmux to test the interactive
# console on a real terminal), Linux's MP-table header for the C layout
# test, and the
# Rust bits (the bare-metal x86_64-unknown-none target, clippy, rustfmt).
#
# Idempotent and fast on re-runs: apt-get is skipped entirely when every
# package is already installed (checked with dpkg-query), and rustup is only
# asked to add what `rustup ... list --installed` does not already show.
set -euo pipefail

DEB_PACKAGES=(
    gcc
    linux-libc-dev
    libxen-dev
    qemu-system-x86
    device-tree-compiler
    busybox-static
    xz-utils
    zstd
    cpio
    kmod
    acpica-tools
    tmux
    socat
)
RUST_TARGET=x86_64-unknown-none
RUST_COMPONENTS=(clippy rustfmt)

log() { printf 'setup: %s\n' "$*"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [[ $status != ii* ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all Debian packages already installed"
else
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- Linux's MP-table header ----------------------------------------------
# tests/tests/c_headers.rs checks pvh's MP table structures against Linux's
# arch/x86/include/asm/mpspec_def.h, a kernel-internal header no -dev
# package installs: it comes out of the linux-headers-*-common package of
# Debian's current kernel (downloaded, not installed) into MPSPEC_DIR.
MPSPEC_DIR=/usr/local/include/pvh-linux-kernel
if [[ -f $MPSPEC_DIR/mpspec_def.h ]]; then
    log "Linux's mpspec_def.h already in $MPSPEC_DIR"
else
    resolve() {
        # $1 depends on the first package matching $2.
        apt-cache depends "$1" 2>/dev/null | awk -v re="$2" '$1 == "Depends:" && $2 ~ re { print $2; exit }'
    }
    flavour=$(resolve linux-headers-amd64 '^linux-headers-.*-amd64$')
    if [[ -z $flavour ]]; then
        as_root apt-get update
        flavour=$(resolve linux-headers-amd64 '^linux-headers-.*-amd64$')
    fi
    common=$(resolve "$flavour" '^linux-headers-.*-common$')
    if [[ -z $common ]]; then
        echo "setup: cannot find Debian's linux-headers-*-common package" >&2
        exit 1
    fi
    log "extracting mpspec_def.h from $common"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get download "$common" >/dev/null)
    dpkg-deb --fsys-tarfile "$tmp"/*.deb |
        tar -x -O --wildcards '*/arch/x86/include/asm/mpspec_def.h' >"$tmp/mpspec_def.h"
    grep -q 'struct mpf_intel' "$tmp/mpspec_def.h"
    as_root install -D -m 644 "$tmp/mpspec_def.h" "$MPSPEC_DIR/mpspec_def.h"
    rm -rf "$tmp"
fi

# --- Rust target and components -------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup not found on PATH (expected ~/.cargo/bin/rustup)" >&2
    exit 1
fi

if rustup target list --installed | grep -qx "$RUST_TARGET"; then
    log "rust target $RUST_TARGET already installed"
else
    log "adding rust target $RUST_TARGET"
    rustup target add "$RUST_TARGET"
fi

installed_components=$(rustup component list --installed)
for comp in "${RUST_COMPONENTS[@]}"; do
    # Installed components are listed with a host suffix, e.g. clippy-x86_64-...
    if grep -q "^${comp}\(-\|$\)" <<<"$installed_components"; then
        log "rust component $comp already installed"
    else
        log "adding rust component $comp"
        rustup component add "$comp"
    fi
done

# The toolchain that made pvh-guests' shipped images (guests-bin/prebuilt/):
# the test that rebuilds and compares them needs it, with the guest target,
# when the default toolchain is another version.
pinned=$(sed -n '1p' "$(dirname "${BASH_SOURCE[0]}")/../guests-bin/prebuilt/TOOLCHAIN" 2>/dev/null || true)
pinned_version=$(sed -n '2p' "$(dirname "${BASH_SOURCE[0]}")/../guests-bin/prebuilt/TOOLCHAIN" 2>/dev/null || true)
if [[ -n $pinned && $(rustc -V) != "$pinned_version" ]]; then
    if rustup run "$pinned" rustc -V >/dev/null 2>&1 &&
        rustup target list --installed --toolchain "$pinned" | grep -qx "$RUST_TARGET"; then
        log "guest images' toolchain $pinned already installed"
    else
        log "installing the guest images' toolchain $pinned (guests-bin/prebuilt/TOOLCHAIN)"
        rustup toolchain install "$pinned" --profile minimal --target "$RUST_TARGET"
    fi
fi

log "done"
