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

# rustfmt and clippy come with the toolchain: add them if rustup can, fail
# otherwise (a lint that is skipped is a lint that passes).
ensure_rust_components() {
    cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return
    if command -v rustup >/dev/null 2>&1; then
        echo "==> rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    fi
    cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt is not installed with this Rust toolchain" >&2; return 1; }
    cargo clippy --version >/dev/null 2>&1 || { echo "clippy is not installed with this Rust toolchain" >&2; return 1; }
}

# --- checks with one honest summary line ---------------------------------
# checks_init CLEANUP: after it, `check "what" command...` counts a passed or
# failed check. Whatever ends the script, CLEANUP runs first (its own
# failures are counted with `bad`), then "N passed, N failed" is printed and
# the exit status is 0 only when nothing failed. An exit before checks_done
# (set -e, an explicit exit) counts as one more failure, naming the command
# that stopped the script.
checks_init() {
    pass=0
    fail=0
    checks_cleanup=$1
    checks_finished=
    checks_stopped_by=
    checks_dir=$(mktemp -d)
    set -E
    trap 'checks_stopped_by="line $LINENO: $BASH_COMMAND"' ERR
    trap checks_exit EXIT
}
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { # check "description" command...
    local what=$1
    shift
    if "$@" >"$checks_dir/out" 2>&1; then ok "$what"; else
        bad "$what"
        sed 's/^/       /' "$checks_dir/out"
    fi
}
checks_done() {
    checks_finished=1
    exit 0
}
checks_exit() {
    local rc=$?
    trap - ERR
    set +e
    if [ -z "$checks_finished" ]; then
        bad "stopped before the end (exit $rc) at ${checks_stopped_by:-an explicit exit}"
    fi
    "$checks_cleanup"
    rm -rf "$checks_dir"
    echo
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ] && exit 0
    exit 1
}

# --- processes a test run leaves behind ----------------------------------
# survivors MARKER: every live process whose environment holds MARKER
# (NAME=VALUE, inherited from the test command by all it starts), other
# than the caller and its ancestors, as "PID PPID COMMAND"; then the
# listening sockets they hold.
survivors() {
    python3 - "$1" <<'PY'
import os, subprocess, sys
marker = sys.argv[1].encode()
mine, pid = set(), os.getpid()
while pid > 1:  # this scan and the shells that started it
    mine.add(pid)
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
found = []
for d in os.listdir("/proc"):
    if not d.isdigit() or int(d) in mine:
        continue
    try:
        with open(f"/proc/{d}/environ", "rb") as f:
            env = f.read().split(b"\0")
        with open(f"/proc/{d}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{d}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        continue  # gone meanwhile, or a kernel thread
    if marker in env and fields[0] not in ("Z", "X"):
        found.append((int(d), int(fields[1]), cmd))
for pid, ppid, cmd in sorted(found):
    print(pid, ppid, cmd[:200])
if found:
    pids = {f"pid={p}," for p, _, _ in found}
    ss = subprocess.run(["ss", "-Hlnp"], capture_output=True, text=True).stdout
    for line in ss.splitlines():
        if any(p in line for p in pids):
            print("  listening:", " ".join(line.split()))
PY
}
