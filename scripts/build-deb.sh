#!/usr/bin/env bash
# Builds the Debian package: `scripts/build-deb.sh` leaves
# target/deb/portcullis_VERSION_ARCH.deb (and the .buildinfo/.changes).
#
# dpkg-buildpackage writes its results into the parent of the source tree,
# so the tree is copied to target/deb/src first; cargo keeps using this
# checkout's target/ directory, so a rebuild only compiles what changed.
# Extra arguments go to dpkg-buildpackage. Set DEB_BUILD_OPTIONS=nocheck
# to skip the unit tests during the build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/target/deb"
src="$out/src"
mkdir -p "$out"
rm -rf "$src"
mkdir -p "$src"
# The files git knows about, as they are in the working tree, with their
# times: cargo then rebuilds only what changed since the last package.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$repo" && xargs -0 cp --parents --preserve=timestamps -t "$src")
rm -f "$out"/portcullis_*.deb "$out"/portcullis-dbgsym_*.deb "$out"/portcullis_*.buildinfo "$out"/portcullis_*.changes
cd "$src"
extra=()
# A toolchain from rustup is not a Debian package: when cargo is on PATH but
# neither cargo nor cargo-web is installed, skip the build-dependency check
# (everything else in Build-Depends must still be there).
if command -v cargo >/dev/null 2>&1 &&
    ! dpkg-query -W -f='${Status}' cargo cargo-web 2>/dev/null | grep -q "install ok installed"; then
    missing=$(dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' |
        sed -e 's/cargo-web | cargo//' -e 's/rustc-web | rustc//' | tr -d ' ' || true)
    if [ -n "$missing" ]; then
        echo "missing build dependencies: $missing" >&2
        exit 1
    fi
    echo "==> using $(cargo --version) from PATH instead of Debian's cargo"
    extra+=(-d)
fi
CARGO_TARGET_DIR="$repo/target" dpkg-buildpackage -us -uc -b "${extra[@]}" "$@"
ls -1 "$out"/portcullis_*.deb
