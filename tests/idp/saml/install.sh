#!/usr/bin/env bash
# Installs the Debian packages needed by the local SimpleSAMLphp test IdP.
# Idempotent: does nothing when everything is already installed; runs
# `apt-get update` only when a package is missing.
set -euo pipefail

PACKAGES=(simplesamlphp php-cli php-xml php-mbstring php-curl openssl)

die() { echo "install.sh: ERROR: $*" >&2; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; need a Debian/Ubuntu system to install: ${missing[*]}"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and sudo not available; cannot install: ${missing[*]}"
        SUDO=(sudo)
    fi
    echo "install.sh: installing: ${missing[*]}" >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
        || die "apt-get update failed"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install failed for: ${missing[*]}"
fi

# Sanity checks: the pieces start.sh relies on.
command -v php >/dev/null 2>&1 || die "php not on PATH after install"
command -v openssl >/dev/null 2>&1 || die "openssl not on PATH after install"
[ -f /usr/share/simplesamlphp/www/saml2/idp/SSOService.php ] \
    || die "SimpleSAMLphp not found under /usr/share/simplesamlphp"
php -r 'exit(class_exists("DOMDocument") && function_exists("mb_strlen") ? 0 : 1);' \
    || die "PHP extensions missing (need php-xml for DOMDocument and php-mbstring)"

echo "install.sh: OK (simplesamlphp $(dpkg-query -W -f='${Version}' simplesamlphp), $(php -r 'echo "PHP ", PHP_VERSION;'))" >&2
