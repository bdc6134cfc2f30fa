#!/usr/bin/env bash
# update-guests.sh - rebuild the guest images that the published pvh-guests
# crate ships (guests-bin/prebuilt/), or check that they are up to date.
#
#   bash scripts/update-guests.sh            rebuild prebuilt/ with the pinned toolchain
#   bash scripts/update-guests.sh --check    rebuild into a scratch directory, compare
#                                            byte for byte, exit 1 if they differ
#   bash scripts/update-guests.sh --toolchain 1.96.0
#                                            pin another toolchain, then rebuild
#
# The images come from pvh-guests' own build script (the one definition of
# how guests/ is built), run on a copy of this checkout's files at a fixed
# path, $FIXED below: cargo hashes the absolute path of a path dependency
# outside the guests workspace (../entry) into symbol names, which changes
# the code layout, so the same sources build the same bytes only at the
# same path (the build script remaps the path out of panic messages). The
# toolchain is pinned (first line of prebuilt/TOOLCHAIN) because rustc's
# output differs between versions; scripts/setup.sh installs it with the
# x86_64-unknown-none target when the default toolchain is another one.
# Run this after changing guests/, entry/ or bootparams/ sources the guests
# use; the test prebuilt_guests_are_the_sources_rebuilt fails until then.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prebuilt=guests-bin/prebuilt
check=0
toolchain=$(sed -n '/^[0-9]/{p;q}' "$prebuilt/TOOLCHAIN" 2>/dev/null || true)
while (($#)); do
    case $1 in
    --check) check=1 ;;
    --toolchain)
        toolchain=${2:?--toolchain needs a rustup toolchain name}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
        exit 0
        ;;
    *)
        echo "update-guests: unknown argument: $1" >&2
        exit 2
        ;;
    esac
    shift
done
[[ -n $toolchain ]] || {
    echo "update-guests: no toolchain pinned in $prebuilt/TOOLCHAIN; pass --toolchain" >&2
    exit 2
}

# The copy: every file git tracks or would track (uncommitted edits
# included), at the one path every machine uses; one run at a time.
FIXED=/tmp/pvh-guests-reproducible
repo=$PWD
exec 9>"$FIXED.lock"
flock 9
rm -rf "$FIXED/src"
mkdir -p "$FIXED/src"
git ls-files -z --cached --others --exclude-standard |
    (while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done) |
    tar -c --null -T - -f - | tar -x -C "$FIXED/src"

# The outer environment must not redirect or reconfigure this build.
unset PVH_GUESTS_PREBUILT RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC RUSTC_WRAPPER CARGO_BUILD_TARGET
export CARGO_TARGET_DIR=$FIXED/target
out_dir=$(cd "$FIXED/src" && cargo "+$toolchain" build -p pvh-guests --lib --message-format=json |
    sed -n 's/.*"reason":"build-script-executed","package_id":"[^"]*pvh-guests[^"]*".*"out_dir":"\([^"]*\)".*/\1/p' |
    tail -n 1)
[[ -n $out_dir && -f $out_dir/pvh-probe ]] || {
    echo "update-guests: no guest images from the pvh-guests build" >&2
    exit 1
}
version=$(rustup run "$toolchain" rustc -V)

if ((check)); then
    pinned=$(sed -n '/^rustc /{p;q}' "$prebuilt/TOOLCHAIN")
    [[ $version == "$pinned" ]] || {
        echo "update-guests: toolchain $toolchain is '$version', prebuilt/ was made by '$pinned'" >&2
        exit 1
    }
    status=0
    for bin in pvh-probe pvh-stub; do
        if cmp -s "$out_dir/$bin" "$prebuilt/$bin"; then
            echo "update-guests: $bin matches the sources"
        else
            echo "update-guests: $prebuilt/$bin differs from the sources rebuilt: run scripts/update-guests.sh" >&2
            status=1
        fi
    done
    exit "$status"
fi

cd "$repo"
mkdir -p "$prebuilt"
for bin in pvh-probe pvh-stub; do
    cp "$out_dir/$bin" "$prebuilt/$bin"
done
{
    echo "$toolchain"
    echo "$version"
} >"$prebuilt/TOOLCHAIN"
echo "update-guests: $prebuilt/ rebuilt with $version"
ls -l "$prebuilt"
