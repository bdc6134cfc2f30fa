#!/usr/bin/env bash
# fetch-artifacts.sh - download and prepare real guest artifacts for the pvh
# boot tests, without installing anything into the host system:
#   bzImage, vmlinux (PVH ELF), kmods/ (KVM modules), kernel-version,
#   xen (Multiboot ELF of Xen 4.17), busybox (static).
# Kernel and Xen come from Debian packages via `apt-get download` + `dpkg -x`,
# because the machine's network only reaches the Debian mirrors.
#
# Cache dir: ${PVH_ARTIFACTS:-<repo>/target/pvh-artifacts}. Each step leaves a
# stamp file (.stamp-*) and is skipped on re-runs; delete the cache dir or set
# PVH_REFRESH=1 to redo everything.
#
# Needs: apt, dpkg, xz-utils, kmod (modinfo), python3, busybox-static
# (see scripts/setup.sh).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || dirname "$script_dir")
cache=${PVH_ARTIFACTS:-$repo_root/target/pvh-artifacts}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { printf 'fetch-artifacts: %s\n' "$*"; }
die() { printf 'fetch-artifacts: error: %s\n' "$*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb xz modinfo python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run scripts/setup.sh"
done

if [[ ${PVH_REFRESH:-0} == 1 ]]; then
    log "PVH_REFRESH=1: dropping stamps"
    rm -f "$cache"/.stamp-*
fi

stamp_ok() { [[ -f $cache/.stamp-$1 ]]; }
stamp_set() { printf '%s\n' "${2:-done}" >"$cache/.stamp-$1"; }

# apt needs package lists; run `apt-get update` at most once per invocation,
# and only when a download is actually needed. A marker file (not a variable)
# records it, because apt_download runs in $(...) subshells.
apt_marker=$cache/.apt-updated.$$
trap 'rm -f "$apt_marker"' EXIT
apt_update_once() {
    if [[ ! -f $apt_marker ]]; then
        log "apt-get update"
        apt-get update -qq
        : >"$apt_marker"
    fi
}
have_apt_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

# apt_download PKG: fetch PKG's .deb into $cache, print its path.
# apt-get download runs as root here; APT::Sandbox::User=root silences the
# "_apt cannot access" warning.
apt_download() {
    local pkg=$1
    have_apt_lists || apt_update_once >&2
    # Remove stale debs of this package so the glob below is unambiguous.
    rm -f "$cache/${pkg}"_*.deb
    if ! (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg") >&2; then
        # Lists may be stale (old version gone from the mirror): refresh, retry.
        apt_update_once >&2
        (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg") >&2
    fi
    local debs=("$cache/${pkg}"_*.deb)
    [[ -f ${debs[0]} ]] || die "apt-get download $pkg produced no .deb"
    printf '%s\n' "${debs[0]}"
}

# --- Linux kernel package ---------------------------------------------------
if stamp_ok kernel-pkg && [[ -d $cache/linux/boot ]]; then
    log "kernel package already extracted ($(cat "$cache/.stamp-kernel-pkg"))"
else
    meta_deb=$(apt_download linux-image-amd64)
    # The metapackage depends on exactly one real image, e.g.
    # "linux-image-6.1.0-56-amd64 (= 6.1.192-2)". Read it from the .deb we got
    # (same version apt-get download chose), fall back to apt-cache depends.
    kpkg=$(dpkg-deb -f "$meta_deb" Depends | tr ',' '\n' |
        grep -oE 'linux-image-[0-9][^ ]*-amd64' | head -n1 || true)
    if [[ -z $kpkg ]]; then
        kpkg=$(apt-cache depends linux-image-amd64 |
            grep -oE 'linux-image-[0-9][^ ]*-amd64' | head -n1 || true)
    fi
    [[ -n $kpkg ]] || die "cannot resolve the real kernel package of linux-image-amd64"
    log "linux-image-amd64 -> $kpkg"
    kdeb=$(apt_download "$kpkg")
    rm -rf "$cache/linux"
    dpkg -x "$kdeb" "$cache/linux"
    rm -f "$cache"/.stamp-bzimage "$cache"/.stamp-vmlinux "$cache"/.stamp-kmods
    stamp_set kernel-pkg "$(basename "$kdeb")"
fi

# --- kernel-version, bzImage -----------------------------------------------
moddirs=("$cache"/linux/lib/modules/*/)
[[ -d ${moddirs[0]} ]] || die "no lib/modules/*/ in $cache/linux"
kver=$(basename "${moddirs[0]}")
printf '%s\n' "$kver" >"$cache/kernel-version"

if stamp_ok bzimage && [[ -f $cache/bzImage ]]; then
    log "bzImage up to date"
else
    vmlinuz=$cache/linux/boot/vmlinuz-$kver
    [[ -f $vmlinuz ]] || die "$vmlinuz missing"
    cp "$vmlinuz" "$cache/bzImage"
    rm -f "$cache"/.stamp-vmlinux
    stamp_set bzimage
fi

# --- vmlinux: the ELF inside the bzImage -----------------------------------
# Setup header (Documentation/arch/x86/boot.rst): setup_sects u8 @0x1f1
# (0 means 4), payload_offset u32 @0x248, payload_length u32 @0x24c. The
# protected-mode code starts at (setup_sects+1)*512; the compressed payload
# sits payload_offset bytes into it. Debian compresses it with XZ.
if stamp_ok vmlinux && [[ -f $cache/vmlinux ]]; then
    log "vmlinux up to date"
else
    log "extracting vmlinux from bzImage"
    python3 - "$cache/bzImage" "$cache/vmlinux.payload" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
if data[0x202:0x206] != b"HdrS":
    sys.exit("not a bzImage (no HdrS magic)")
setup_sects = data[0x1f1] or 4
payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
start = (setup_sects + 1) * 512 + payload_offset
payload = data[start:start + payload_length]
if len(payload) != payload_length:
    sys.exit("payload runs past the end of the file")
if not payload.startswith(b"\xfd7zXZ\x00"):
    sys.exit("payload at 0x%x is not XZ (starts %s)" % (start, payload[:6].hex()))
open(dst, "wb").write(payload)
print("fetch-artifacts: payload at 0x%x, %d bytes (setup_sects=%d)"
      % (start, payload_length, setup_sects))
PY
    # The payload is followed by the 4-byte decompressed size, which xz sees
    # as trailing garbage; --single-stream stops after the first stream.
    xz -dc --single-stream "$cache/vmlinux.payload" >"$cache/vmlinux.tmp"
    rm -f "$cache/vmlinux.payload"
    [[ $(head -c4 "$cache/vmlinux.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] ||
        die "decompressed payload is not an ELF"
    mv "$cache/vmlinux.tmp" "$cache/vmlinux"
    stamp_set vmlinux
fi

# --- kernel modules for nested KVM ------------------------------------------
# Copied uncompressed so busybox insmod can load them. Dependencies (modinfo
# -F depends) are followed transitively and copied too; kmods/load-order
# lists them dependencies-first for insmod.
if stamp_ok kmods && [[ -d $cache/kmods ]]; then
    log "kmods up to date"
else
    kernel_dir=$cache/linux/lib/modules/$kver/kernel
    find_mod() { # NAME -> path of NAME.ko[.xz|.zst|.gz], '-' and '_' equivalent
        local pat
        pat="$(printf '%s' "$1" | sed 's/[-_]/[-_]/g').ko*"
        find "$kernel_dir" -name "$pat" | head -n1
    }
    rm -rf "$cache/kmods"
    mkdir -p "$cache/kmods"
    declare -A seen=()
    order=()
    add_mod() { # depth-first: dependencies land in order[] before dependents
        local name=${1//-/_} path dep deps
        [[ -n ${seen[$name]:-} ]] && return 0
        seen[$name]=1
        path=$(find_mod "$1")
        [[ -n $path ]] || die "module $1 not found under $kernel_dir"
        case $path in
            *.ko.xz) xz -dc "$path" >"$cache/kmods/$1.ko.tmp" ;;
            *.ko.zst) zstd -qdc "$path" >"$cache/kmods/$1.ko.tmp" ;;
            *.ko.gz) gzip -dc "$path" >"$cache/kmods/$1.ko.tmp" ;;
            *) cp "$path" "$cache/kmods/$1.ko.tmp" ;;
        esac
        local base
        base=$(basename "$path")
        base=${base%%.ko*}
        mv "$cache/kmods/$1.ko.tmp" "$cache/kmods/$base.ko"
        deps=$(modinfo -F depends "$cache/kmods/$base.ko")
        for dep in ${deps//,/ }; do
            add_mod "$dep"
        done
        order+=("$base.ko")
    }
    for m in irqbypass ccp kvm kvm-amd kvm-intel; do
        add_mod "$m"
    done
    printf '%s\n' "${order[@]}" >"$cache/kmods/load-order"
    log "modules (load order): ${order[*]}"
    stamp_set kmods
fi

# --- Xen hypervisor -----------------------------------------------------------
if stamp_ok xen && [[ -f $cache/xen ]]; then
    log "xen up to date ($(cat "$cache/.stamp-xen"))"
else
    # Prefer 4.17 (Debian 12); otherwise the newest xen-hypervisor-X.Y-amd64.
    have_apt_lists || apt_update_once
    xpkg=$(apt-cache pkgnames xen-hypervisor- | grep -xE 'xen-hypervisor-[0-9.]+-amd64' |
        sort -V | { grep -x 'xen-hypervisor-4.17-amd64' || tail -n1; } || true)
    [[ -n $xpkg ]] || die "no xen-hypervisor-*-amd64 package known to apt"
    log "xen package: $xpkg"
    xdeb=$(apt_download "$xpkg")
    rm -rf "$cache/xenpkg"
    dpkg -x "$xdeb" "$cache/xenpkg"
    xgz=$(find "$cache/xenpkg/boot" -name 'xen-*-amd64.gz' | sort | head -n1)
    [[ -n $xgz ]] || die "no boot/xen-*-amd64.gz in $xdeb"
    gzip -dc "$xgz" >"$cache/xen.tmp"
    mv "$cache/xen.tmp" "$cache/xen"
    stamp_set xen "$(basename "$xdeb")"
fi

# --- busybox ----------------------------------------------------------------
if [[ ! -x /bin/busybox ]]; then
    die "/bin/busybox missing; run scripts/setup.sh (busybox-static)"
fi
if ! cmp -s /bin/busybox "$cache/busybox" 2>/dev/null; then
    cp /bin/busybox "$cache/busybox"
    chmod 755 "$cache/busybox"
fi

# --- summary ----------------------------------------------------------------
log "cache: $cache (kernel $kver)"
for f in "$cache"/{bzImage,vmlinux,xen,busybox,kernel-version} "$cache"/kmods/*.ko; do
    printf '%-60s %12s\n' "$f" "$(stat -c %s "$f")"
done
