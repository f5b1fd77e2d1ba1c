#!/usr/bin/env bash
# Builds a signed APT repository of Portcullis with reprepro:
#
#   scripts/build-apt-repo.sh [--key KEYID] [--out DIR] [DEB...]
#
# Without DEB files it builds the package first (scripts/build-deb.sh). The
# repository lands in DIR (default target/apt-repo): dists/ and pool/ as
# apt expects them, one suite, `stable`, component
# `main`, signed InRelease and Release.gpg, and the public key next to it as
# portcullis-archive-keyring.pgp, the file users put in /etc/apt/keyrings/
# and name in `Signed-By:` (README, "Install from the APT repository").
#
# --key KEYID signs with that key from the caller's GnuPG keyring (the
# release key). Without it a signing key is made once for this checkout in
# target/apt-signing/ (a throw-away key for tests and local mirrors; its
# public half is the keyring file above). Adding a DEB to an existing
# repository keeps what is there: an upgrade is "add the new version, apt
# update". Needs reprepro and gnupg (installed when missing).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh

key=
out=$repo/target/apt-repo
debs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --key) key=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-apt-repo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) debs+=("$(realpath "$1")"); shift ;;
    esac
done

ensure_apt reprepro gnupg

if [ ${#debs[@]} = 0 ]; then
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} scripts/build-deb.sh >target/deb-build.log 2>&1 || {
        tail -30 target/deb-build.log
        echo "build-apt-repo.sh: the package did not build (full log in target/deb-build.log)" >&2
        exit 1
    }
    debs=("$(ls "$repo"/target/deb/portcullis_*.deb | grep -v dbgsym | head -1)")
fi

if [ -z "$key" ]; then
    # A key of this checkout's own, kept apart from the caller's keyring.
    export GNUPGHOME=$repo/target/apt-signing
    # gpg starts an agent for this home that would outlive the script.
    trap 'gpgconf --kill gpg-agent 2>/dev/null || true' EXIT
    if [ ! -s "$GNUPGHOME/key-id" ]; then
        rm -rf "$GNUPGHOME"
        install -d -m 0700 "$GNUPGHOME"
        gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
            --quick-generate-key "Portcullis test archive <archive@portcullis.invalid>" ed25519 sign 1y
        gpg --batch --list-keys --with-colons | awk -F: '/^fpr:/ {print $10; exit}' >"$GNUPGHOME/key-id"
    fi
    key=$(cat "$GNUPGHOME/key-id")
fi

mkdir -p "$out/conf"
cat >"$out/conf/distributions" <<EOF
Origin: Portcullis
Label: Portcullis
Codename: stable
Suite: stable
Architectures: $(dpkg --print-architecture)
Components: main
Description: Portcullis, a single sign-on gate
SignWith: $key
EOF
# reprepro keeps its database in the repository's db/ directory: adding a
# version to an existing repository keeps the others' history right.
for deb in "${debs[@]}"; do
    reprepro --basedir "$out" --silent --section utils --priority optional includedeb stable "$deb"
done
reprepro --basedir "$out" export stable
gpg --batch --yes --export "$key" >"$out/portcullis-archive-keyring.pgp"
echo "repository: $out (suite stable, signed by $key)"
reprepro --basedir "$out" list stable
