#!/usr/bin/env bash
# Runs every Portcullis test: formatting, lints, unit tests, and the
# integration tests against the real binary, a real upstream, a real OpenID
# provider (oidc-provider) and a real SAML IdP (SimpleSAMLphp), on loopback
# ports chosen at run time. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt ca-certificates build-essential pkg-config chromium chromium-driver
ensure_rust
ensure_node
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
cargo test --locked
