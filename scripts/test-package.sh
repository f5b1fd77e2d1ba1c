#!/usr/bin/env bash
# Builds the Debian package and tests it on this machine: inspects it
# (dpkg-deb -I/-c), runs lintian (no errors, no warnings that are not
# overridden with a reason in debian/portcullis.lintian-overrides), installs
# it with dpkg, checks the system user, directories and modes, runs
# `portcullis check-config` on the shipped examples, verifies the systemd
# units, runs the unit's ExecStart line for an instance the way systemd
# would, and purges the package again. Needs root. Idempotent: a previous
# install is purged first, and the package is purged at the end, also on
# failure. systemd need not be running (nothing is started with systemctl).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

pass=0
fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { # check "description" command...
    local what=$1
    shift
    if "$@" >/tmp/portcullis-check.out 2>&1; then ok "$what"; else
        bad "$what"
        sed 's/^/       /' /tmp/portcullis-check.out
    fi
}

if [ "$(id -u)" != 0 ]; then
    echo "test-package.sh installs a package: run it as root" >&2
    exit 1
fi

# The packages the build and the checks need.
missing=()
while read -r p; do
    [ -z "$p" ] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done <scripts/apt-packages-ship.txt
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

instance=example-test
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "/etc/portcullis/$instance.yaml"
    if dpkg-query -W -f='${Status}' portcullis 2>/dev/null | grep -q installed; then
        dpkg --purge portcullis >/dev/null
    fi
}
trap cleanup EXIT

echo "==> purge an earlier install, if any"
cleanup

echo "==> build the package"
# The unit tests run with `cargo test`; do not run them again in the build
# unless asked to.
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} scripts/build-deb.sh >target/deb-build.log 2>&1 || {
    tail -50 target/deb-build.log
    echo "dpkg-buildpackage failed; full log in target/deb-build.log" >&2
    exit 1
}
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
deb="target/deb/portcullis_${version}_${arch}.deb"
check "dpkg-buildpackage produced portcullis_${version}_${arch}.deb" test -s "$deb"

echo "==> inspect the package"
info=$(dpkg-deb -I "$deb")
contents=$(dpkg-deb -c "$deb")
check "control: package name" grep -q "^ Package: portcullis$" <<<"$info"
check "control: depends on adduser" grep -Eq "^ Depends:.*adduser" <<<"$info"
for member in postinst postrm prerm conffiles md5sums; do
    check "control member $member" grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines? .*${member}" <<<"$info"
done
check "binary /usr/bin/portcullis, root-owned, 0755" grep -Eq '^-rwxr-xr-x root/root .* \./usr/bin/portcullis$' <<<"$contents"
check "unit portcullis@.service" grep -q ' \./lib/systemd/system/portcullis@\.service$' <<<"$contents"
check "unit portcullis.target" grep -q ' \./lib/systemd/system/portcullis\.target$' <<<"$contents"
check "example config in /etc/portcullis" grep -q ' \./etc/portcullis/example\.yaml\.sample$' <<<"$contents"
for f in reference.yaml minimal.yaml nginx-proxy.conf nginx-auth-request.conf Caddyfile-forward-auth; do
    check "example $f" grep -q " \./usr/share/portcullis/examples/$f$" <<<"$contents"
done
check "operations guide" grep -q ' \./usr/share/doc/portcullis/operations\.md' <<<"$contents"
check "example config is a conffile" bash -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/portcullis/example.yaml.sample"

echo "==> lintian"
lintian_out=$(lintian --display-info --fail-on none "$deb" 2>&1 || true)
echo "$lintian_out" | sed 's/^/       /'
check "lintian: no errors" bash -c '! grep -q "^E: " <<<"$0"' "$lintian_out"
check "lintian: no warnings that are not overridden" bash -c '! grep -q "^W: " <<<"$0"' "$lintian_out"

echo "==> install"
check "dpkg -i" dpkg -i "$deb"
check "portcullis version" bash -c "portcullis version | grep -qx 'portcullis ${version%-*}'"

echo "==> user, group, directories"
check "system group portcullis" getent group portcullis
check "system user portcullis (system uid, no login, home in /var/lib)" bash -c '
    IFS=: read -r name _ uid gid _ home shell < <(getent passwd portcullis)
    [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/portcullis ] && [ "$shell" = /usr/sbin/nologin ] &&
    [ "$(getent group portcullis | cut -d: -f3)" = "$gid" ]'
check "/etc/portcullis is root:portcullis 0750" bash -c '[ "$(stat -c "%U:%G %a" /etc/portcullis)" = "root:portcullis 750" ]'
check "/var/lib/portcullis is portcullis:portcullis 0750" bash -c '[ "$(stat -c "%U:%G %a" /var/lib/portcullis)" = "portcullis:portcullis 750" ]'
check "/usr/bin/portcullis is root:root 0755" bash -c '[ "$(stat -c "%U:%G %a" /usr/bin/portcullis)" = "root:root 755" ]'

echo "==> the shipped examples are valid"
check "check-config on /etc/portcullis/example.yaml.sample (as user portcullis)" \
    runuser -u portcullis -- portcullis --config /etc/portcullis/example.yaml.sample check-config
check "check-config on examples/minimal.yaml" \
    portcullis --config /usr/share/portcullis/examples/minimal.yaml check-config
check "a broken config is refused with the field named" bash -c '
    printf "domain: a.example.com\nupstream:\n  url: nope\n" >/tmp/portcullis-broken.yaml
    ! portcullis --config /tmp/portcullis-broken.yaml check-config 2>/tmp/portcullis-broken.err &&
    grep -q "upstream.url" /tmp/portcullis-broken.err'

echo "==> systemd units"
check "systemd-analyze verify portcullis@.service (instance $instance) and portcullis.target" \
    bash -c "cp /usr/share/portcullis/examples/minimal.yaml /etc/portcullis/$instance.yaml &&
             systemd-analyze verify /lib/systemd/system/portcullis@$instance.service /lib/systemd/system/portcullis.target 2>&1 | tee /dev/stderr | (! grep -q .)"
security=$(systemd-analyze security --offline=true --no-pager "/lib/systemd/system/portcullis@.service" 2>&1 || true)
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \(.*\)/\1 \2/p' <<<"$security")
echo "       systemd-analyze security: ${score:-not available}"
check "systemd-analyze security exposure at most 1.5" bash -c "awk '{exit !(\$1 <= 1.5)}' <<<'${score:-99}'"
check "unit: Type=notify, reload by SIGHUP, PartOf/WantedBy portcullis.target" bash -c '
    u=/lib/systemd/system/portcullis@.service
    grep -qx "Type=notify" $u && grep -qxF "ExecReload=/bin/sh -c '"'"'kill -HUP \"\$MAINPID\"'"'"'" $u &&
    grep -qx "PartOf=portcullis.target" $u && grep -qx "WantedBy=portcullis.target" $u &&
    grep -qx "StateDirectory=portcullis/%i" $u'

# The ExecStart line, with %i replaced as systemd does, run as the unit's
# user with the environment systemd gives it: it must serve the instance's
# own config.
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/portcullis@.service)
check "ExecStart reads /etc/portcullis/%i.yaml" test "$exec_start" = "/usr/bin/portcullis --config /etc/portcullis/%i.yaml run"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"/etc/portcullis/$instance.yaml" <<YAML
domain: $instance.example.com
listen: 127.0.0.1:$port
upstream:
  url: http://127.0.0.1:9
YAML
chown root:portcullis "/etc/portcullis/$instance.yaml"
chmod 0640 "/etc/portcullis/$instance.yaml"
state=/var/lib/portcullis/$instance
install -d -o portcullis -g portcullis -m 0700 "$state"
# shellcheck disable=SC2086
cmd=${exec_start//%i/$instance}
log=$(mktemp)
runuser -u portcullis -- env STATE_DIRECTORY="$state" $cmd 2>"$log" &
pid=$!
for _ in $(seq 100); do
    grep -q '"portcullis ready"' "$log" && break
    sleep 0.1
done
check "ExecStart serves instance $instance" bash -c "grep -q '\"domain\":\"$instance.example.com\"' '$log' &&
    python3 -c 'import urllib.request,sys; sys.exit(urllib.request.urlopen(\"http://127.0.0.1:$port/.portcullis/health\").status != 200)'"
check "the instance created its key ring 0600 in its state directory" bash -c "[ \"\$(stat -c '%U %a' $state/session-keys.json)\" = 'portcullis 600' ]"
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
check "it stopped cleanly on SIGTERM" grep -q '"stopped"' "$log"
check "keygen --rotate run by root keeps the key ring owned by portcullis" bash -c "
    portcullis keygen --rotate --out $state/session-keys.json &&
    [ \"\$(stat -c '%U:%G %a' $state/session-keys.json)\" = 'portcullis:portcullis 600' ] &&
    [ \"\$(portcullis keys list --file $state/session-keys.json | wc -l)\" = 2 ]"
rm -f "$log" "/etc/portcullis/$instance.yaml"

echo "==> purge"
check "dpkg --purge" dpkg --purge portcullis
check "binary removed" test ! -e /usr/bin/portcullis
check "state removed" test ! -e /var/lib/portcullis
check "/etc/portcullis removed" test ! -e /etc/portcullis

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
