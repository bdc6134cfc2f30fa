#!/usr/bin/env bash
# mkinitramfs.sh - build a tiny busybox initramfs (newc cpio) for test guests.
#
#   scripts/mkinitramfs.sh OUT INIT_SCRIPT [EXTRA_FILE:DEST ...]
#
# Contents: /bin/busybox plus applet symlinks (sh, echo, cat, mount, ...),
# /dev/console, empty /proc /sys /tmp, INIT_SCRIPT as /init (mode 755), and each
# EXTRA_FILE copied to DEST (an absolute path in the image; mode preserved).
# OUT ending in .cpio is written uncompressed, anything else gzip-compressed.
# Files are owned by root in the archive (cpio -R 0:0), so no fakeroot is
# needed. Busybox is taken from $PVH_BUSYBOX, else /bin/busybox
# (busybox-static; see scripts/setup.sh).
set -euo pipefail

usage() {
    echo "usage: $0 OUT INIT_SCRIPT [EXTRA_FILE:DEST ...]" >&2
    exit 2
}
(($# >= 2)) || usage
out=$1
init=$2
shift 2

busybox=${PVH_BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || { echo "mkinitramfs: $busybox not found (install busybox-static)" >&2; exit 1; }
[[ -f $init ]] || { echo "mkinitramfs: init script $init not found" >&2; exit 1; }
command -v cpio >/dev/null 2>&1 || { echo "mkinitramfs: cpio not found" >&2; exit 1; }

applets=(sh echo cat mount umount insmod reboot poweroff hexdump nproc sleep
    mkdir ls dmesg uname cp mv rm ln grep sed dd true false test printf
    timeout kill hwclock date)

staging=$(mktemp -d "${TMPDIR:-/tmp}/pvh-initramfs.XXXXXX")
trap 'rm -rf "$staging"' EXIT

mkdir -p "$staging"/{bin,sbin,dev,proc,sys,tmp,etc,root}
chmod 1777 "$staging/tmp"
# The kernel opens /dev/console for init's stdio before anything can mount
# devtmpfs, so the node must be in the archive. Creating it needs root.
if ! mknod -m 600 "$staging/dev/console" c 5 1 2>/dev/null; then
    echo "mkinitramfs: warning: cannot mknod /dev/console (not root?);" \
        "/init must mount devtmpfs and reopen its stdio itself" >&2
fi
cp "$busybox" "$staging/bin/busybox"
chmod 755 "$staging/bin/busybox"
for a in "${applets[@]}"; do
    ln -s busybox "$staging/bin/$a"
done
cp "$init" "$staging/init"
chmod 755 "$staging/init"

for spec in "$@"; do
    [[ $spec == *:* ]] || { echo "mkinitramfs: bad EXTRA_FILE:DEST '$spec'" >&2; exit 2; }
    src=${spec%%:*}
    dest=${spec#*:}
    [[ -e $src ]] || { echo "mkinitramfs: extra file $src not found" >&2; exit 1; }
    dest=/${dest#/}
    mkdir -p "$staging$(dirname "$dest")"
    cp -pr "$src" "$staging$dest"
done

# Relative names without ./ (what the kernel's unpacker expects); sorted for a
# reproducible order.
out_abs=$(realpath -m "$out")
mkdir -p "$(dirname "$out_abs")"
(
    cd "$staging"
    find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 >"$out_abs.tmp"
)
if [[ $out_abs == *.cpio ]]; then
    mv "$out_abs.tmp" "$out_abs"
else
    gzip -9n <"$out_abs.tmp" >"$out_abs"
    rm -f "$out_abs.tmp"
fi
echo "mkinitramfs: wrote $out ($(stat -c %s "$out_abs") bytes)"
