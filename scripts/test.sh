#!/usr/bin/env bash
# Runs every Portcullis test: formatting, lints, unit tests, the integration
# tests against the real binary, a real upstream, a real OpenID provider
# (oidc-provider), a real SAML IdP (SimpleSAMLphp), real nginx and Caddy and
# headless Chromium, on loopback ports chosen at run time; then builds the
# Debian package, installs and checks it, and boots it under systemd in a
# container. Installs what the tests need first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Build: a C toolchain; libxmlsec1/libxml2 and clang for the SAML code.
# Tests: Chromium for the browser logins, nginx and Caddy in front of
# Portcullis, the packaging tools; SimpleSAMLphp as the SAML IdP.
ensure_apt ca-certificates build-essential pkg-config libxmlsec1-dev libclang-dev \
    chromium chromium-driver $(cat scripts/apt-packages-ship.txt)
ensure_rust
ensure_node
tests/idp/saml/install.sh
echo "==> npm ci (local OpenID provider for the tests)"
npm ci --silent --no-audit --no-fund --prefix tests/idp/oidc

if cargo fmt --version >/dev/null 2>&1; then
    echo "==> cargo fmt --check"
    cargo fmt --all -- --check
else
    echo "==> rustfmt not installed with this toolchain: format check skipped"
fi
if cargo clippy --version >/dev/null 2>&1; then
    echo "==> cargo clippy"
    cargo clippy --locked --all-targets -- -D warnings
else
    echo "==> clippy not installed with this toolchain: lint check skipped"
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0
run() { # run NAME command...: keeps going after a failure, remembers it
    local name=$1
    shift
    echo "==> $name"
    set +e
    "$@" 2>&1 | tee "$logs/$name.log"
    local rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" -eq 0 ] || status=1
}
run cargo-test cargo test --locked
run package scripts/test-package.sh
run systemd scripts/test-systemd-container.sh

# One closing line over everything: cargo's per-binary results and the
# scripts' "N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$logs"/*.log
exit "$status"
