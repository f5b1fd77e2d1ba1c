#!/usr/bin/env bash
# Runs every Portcullis test: formatting, lints, unit tests, the integration
# tests against the real binary, a real upstream, a real OpenID provider
# (oidc-provider), a real SAML IdP (SimpleSAMLphp), real nginx and Caddy and
# headless Chromium, on loopback ports chosen at run time; then builds the
# Debian package, installs and checks it, and boots it under systemd in a
# container. Installs what the tests need first. Run as root.
#
# Every step runs, whatever failed before it, with its output in
# target/test-logs/STEP.log. At the end no process started by the run may
# be left: each inherits TEST_RUN_MARKER, and a live process still
# carrying this run's value is printed, ended, and fails the run. The last
# line counts every failure: failed tests, failed checks of the package
# scripts, and each step that failed without a failed test to show for it
# (a compile error, a crashed test binary, fmt, clippy, a script stopped
# early, a leftover process). The exit status is 0 exactly when that count
# is 0.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Not PORTCULLIS_*: Portcullis reads those as configuration.
TEST_RUN_MARKER=$(date +%s)-$$-$RANDOM
export TEST_RUN_MARKER
logs=target/test-logs
rm -rf "$logs"
mkdir -p "$logs"

steps=()   # "name result passed failed seconds", one per step
# Bounds a step so that a hang fails it instead of the whole CI budget.
step_timeout=${PORTCULLIS_STEP_TIMEOUT:-40m}

step() { # step NAME command...: runs it, keeps going, records the outcome
    local name=$1
    shift
    local log="$logs/$name.log" start=$SECONDS rc=0
    echo "==> $name"
    if [ "$(type -t "$1")" = function ]; then
        # In this shell: setup may change PATH, and the leftover scan must
        # not see a tee of its own.
        "$@" >"$log" 2>&1 || rc=$?
        cat "$log"
    else
        # Shown as it is written, until the command ends: a process it left
        # behind holding the output must not keep the step open.
        : >"$log" # before tail opens it
        timeout -k 30s "$step_timeout" "$@" >>"$log" 2>&1 &
        local pid=$!
        tail -s 0.2 -n +1 -f --pid="$pid" "$log"
        wait "$pid" || rc=$?
        [ "$rc" = 124 ] && echo "$name: stopped after $step_timeout" | tee -a "$log"
    fi
    local passed=- failed=- result=ok
    case "$name" in
        cargo-test)
            # One "test result:" line per test binary that ran to its end;
            # a binary that started and gave none crashed: one failure each.
            local ran started
            read -r passed failed ran <<<"$(awk '
                /^test result:/ { n++; for (i = 1; i < NF; i++) {
                    if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
                END { printf "%d %d %d\n", p, f, n }' "$log")"
            started=$(grep -c '^ *Running ' "$log")
            if [ "$started" -gt "$ran" ]; then
                echo "$name: $((started - ran)) test binaries gave no result (crashed or stopped)" | tee -a "$log"
                failed=$((failed + started - ran))
            fi
            if [ "$passed" = 0 ]; then
                echo "$name: no test ran" | tee -a "$log"
                rc=1
            fi
            ;;
        package | systemd)
            # The script's own closing line.
            local line
            if line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1); then
                read -r passed _ failed _ <<<"$line"
            fi
            ;;
    esac
    if [ "$rc" != 0 ] || { [ "$failed" != - ] && [ "$failed" != 0 ]; }; then
        result=FAILED
    fi
    steps+=("$name $result $passed $failed $((SECONDS - start))")
}

setup() {
    # Build: a C toolchain; libxmlsec1/libxml2 and clang for the SAML code.
    # Tests: Chromium for the browser logins, nginx and Caddy in front of
    # Portcullis, the packaging tools; SimpleSAMLphp as the SAML IdP;
    # PyJWT (Debian's python3) verifies identity assertions as an app would;
    # scim2-client and the scim2-tester checker (PyPI, pinned, in a venv)
    # provision through SCIM as an IdP would (tests/scim.rs); xmlsec1 signs
    # SOAP LogoutRequests and encrypts assertions as xmlsec/Lasso and .NET
    # IdPs spell them (tests/saml.rs).
    # shellcheck disable=SC2046
    ensure_apt ca-certificates build-essential pkg-config libxmlsec1-dev libclang-dev \
        chromium chromium-driver python3-jwt python3-cryptography python3-venv redis-server xmlsec1 \
        $(cat scripts/apt-packages-ship.txt) &&
        ensure_rust &&
        ensure_rust_components &&
        ensure_node &&
        tests/idp/saml/install.sh &&
        echo "==> npm ci (local OpenID provider for the tests)" &&
        npm ci --silent --no-audit --no-fund --prefix tests/idp/oidc &&
        echo "==> SCIM client and conformance checker (tests/scim.rs)" &&
        { [ -x target/scim-venv/bin/python ] || python3 -m venv target/scim-venv; } &&
        target/scim-venv/bin/pip install --quiet --disable-pip-version-check \
            -r tests/scim/requirements.txt
}
# ensure_rust may put Debian's cargo on PATH: in this shell, not a subshell.
ensure_rust >/dev/null 2>&1 || true

leftovers() {
    # Processes that are ending right now get a moment; the wait ends as
    # soon as none is left.
    local left
    for _ in $(seq 50); do
        left=$(survivors "TEST_RUN_MARKER=$TEST_RUN_MARKER")
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    echo "processes started by this run are still running:"
    echo "$left"
    # End them, so that the next run starts clean.
    for pid in $(awk '/^[0-9]/ {print $1}' <<<"$left"); do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        [ -z "$(survivors "TEST_RUN_MARKER=$TEST_RUN_MARKER")" ] && break
        sleep 0.1
    done
    for pid in $(survivors "TEST_RUN_MARKER=$TEST_RUN_MARKER" | awk '/^[0-9]/ {print $1}'); do
        kill -KILL "$pid" 2>/dev/null
    done
    return 1
}

step setup setup
step fmt cargo fmt --all -- --check
step clippy cargo clippy --locked --all-targets -- -D warnings
step modules python3 scripts/modcycles.py src
step cargo-test cargo test --locked --no-fail-fast
# The vendored samael (vendor/samael/PORTCULLIS-PATCH.md) with its own tests.
step samael cargo test --locked --no-fail-fast -p samael --lib
step package scripts/test-package.sh
# The container boots the package the previous step built and checked.
deb=$(ls target/deb/portcullis_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1)
step systemd scripts/test-systemd-container.sh $deb
step leftovers leftovers

# The summary: one row per step, then the closing line.
echo
echo "==> summary (logs in $logs/)"
printf '  %-12s %-7s %7s %7s %7s\n' step result passed failed seconds
tests_passed=0
tests_failed=0
steps_failed=()
for row in "${steps[@]}"; do
    read -r name result passed failed secs <<<"$row"
    printf '  %-12s %-7s %7s %7s %7s\n' "$name" "$result" "$passed" "$failed" "$secs"
    [ "$passed" = - ] || tests_passed=$((tests_passed + passed))
    [ "$failed" = - ] || tests_failed=$((tests_failed + failed))
    # A failed step with no failed test of its own is one failure more.
    if [ "$result" = FAILED ] && { [ "$failed" = - ] || [ "$failed" = 0 ]; }; then
        steps_failed+=("$name")
    fi
done
total_failed=$((tests_failed + ${#steps_failed[@]}))
echo "  failed: $tests_failed tests or checks, ${#steps_failed[@]} steps without a failed test (${steps_failed[*]:-none})"
echo "tests: $tests_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
