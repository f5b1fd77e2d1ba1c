# Shared helpers for the demo and test commands: install, on a Debian
# machine, only what is missing. Sourced, not run.

# apt packages, installed only when one is missing (dpkg knows).
ensure_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# A Rust toolchain new enough for edition 2024: the one on PATH, or
# Debian's rustc-web/cargo-web (bookworm ships 1.9x under that name).
ensure_rust() {
    if command -v cargo >/dev/null 2>&1 && cargo --version >/dev/null 2>&1; then
        return
    fi
    ensure_apt cargo-web rustc-web
    local dir
    dir=$(dirname "$(dpkg -L cargo-web | grep -E '/bin/cargo$' | head -n1)")
    export PATH="$dir:$PATH"
}

# Node.js and npm for the local OpenID provider.
ensure_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || ensure_apt nodejs npm
}
