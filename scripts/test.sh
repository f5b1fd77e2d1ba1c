#!/usr/bin/env bash
# Runs every Portcullis test: formatting, lints, unit tests, and the
# integration tests against the real binary, a real upstream, a real OpenID
# provider (oidc-provider) and a real SAML IdP (SimpleSAMLphp), on loopback
# ports chosen at run time. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Build: a C toolchain; libxmlsec1/libxml2 and clang for the SAML code.
# Tests: Chromium for the browser logins, SimpleSAMLphp as the SAML IdP.
ensure_apt ca-certificates build-essential pkg-config libxmlsec1-dev libclang-dev \
    chromium chromium-driver
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
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
