#!/usr/bin/env bash
# Builds the Debian package and tests it on this machine: inspects it
# (dpkg-deb -I/-c), runs lintian (no errors, no warnings that are not
# overridden with a reason in debian/portcullis.lintian-overrides), installs
# it with dpkg, checks the system user, directories and modes, runs
# `portcullis check-config` on the shipped examples, verifies the systemd
# units, runs the unit's ExecStart line for an instance the way systemd
# would (exit 0 on SIGTERM), and purges the package again. Needs root.
# Prints "N passed, N failed" however it ends. Idempotent: a previous
# install is purged first, and the package is purged at the end, also on
# failure. systemd need not be running (nothing is started with systemctl).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh

if [ "$(id -u)" != 0 ]; then
    echo "test-package.sh installs a package: run it as root" >&2
    exit 1
fi

# The packages the build and the checks need.
# shellcheck disable=SC2046
ensure_apt $(cat scripts/apt-packages-ship.txt)

instance=example-test
pid=
work=
# Runs on every exit, also when a step failed: the instance stopped, the
# package purged, temporary files removed.
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    pid=
    rm -f "/etc/portcullis/$instance.yaml"
    if dpkg-query -W -f='${Status}' portcullis 2>/dev/null | grep -q installed; then
        dpkg --purge portcullis >/dev/null || bad "cleanup: dpkg --purge portcullis"
    fi
    [ -z "$work" ] || rm -rf "$work"
}
checks_init cleanup

echo "==> purge an earlier install, if any"
cleanup
work=$(mktemp -d)

echo "==> build the package"
# The unit tests run with `cargo test`; do not run them again in the build
# unless asked to.
if ! DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} scripts/build-deb.sh >target/deb-build.log 2>&1; then
    tail -50 target/deb-build.log
    bad "dpkg-buildpackage (full log in target/deb-build.log)"
    checks_done
fi
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
# Errors and warnings fail; a tag we accept is overridden, with its reason,
# in debian/portcullis.lintian-overrides. Informational tags are shown.
lintian_rc=0
# TMPDIR: lintian leaves files of its own there.
TMPDIR=$work lintian --display-info --fail-on error,warning "$deb" >"$work/lintian.out" 2>&1 || lintian_rc=$?
grep -v '^running with root privileges' "$work/lintian.out" | sed 's/^/       /' || true
check "lintian: no errors, no warnings that are not overridden (exit $lintian_rc)" test "$lintian_rc" = 0
check "lintian: every override still matches a tag" bash -c '! grep -Eq "(unused|mismatched)-override" "$0"' "$work/lintian.out"

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
printf "domain: a.example.com\nupstream:\n  url: nope\n" >"$work/broken.yaml"
broken_rc=0
portcullis --config "$work/broken.yaml" check-config 2>"$work/broken.err" || broken_rc=$?
check "a broken config is refused with exit 1 (got $broken_rc) and the field named" \
    bash -c '[ "$0" = 1 ] && grep -q "upstream.url" "$1"' "$broken_rc" "$work/broken.err"

echo "==> systemd units"
# Both its exit status and its silence: verify prints what it dislikes.
verify_units() {
    local out rc=0
    cp /usr/share/portcullis/examples/minimal.yaml "/etc/portcullis/$instance.yaml"
    out=$(systemd-analyze verify "/lib/systemd/system/portcullis@$instance.service" \
        /lib/systemd/system/portcullis.target 2>&1) || rc=$?
    printf '%s\n' "$out"
    [ "$rc" = 0 ] && [ -z "$out" ]
}
check "systemd-analyze verify portcullis@.service (instance $instance) and portcullis.target" verify_units
security_rc=0
security=$(systemd-analyze security --offline=true --no-pager "/lib/systemd/system/portcullis@.service" 2>&1) || security_rc=$?
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$security")
echo "       systemd-analyze security: ${score:-no score} (exit $security_rc)"
check "systemd-analyze security exposure at most 1.5" \
    python3 -c 'import sys; sys.exit(not (sys.argv[1] and float(sys.argv[1]) <= 1.5))' "$score"
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
cmd=${exec_start//%i/$instance}
log=$work/instance.log
# setpriv execs (as systemd does): $! is portcullis itself, so its exit
# status after SIGTERM is the one `wait` reports.
# shellcheck disable=SC2086
setpriv --reuid portcullis --regid portcullis --init-groups -- \
    env STATE_DIRECTORY="$state" $cmd 2>"$log" &
pid=$!
for _ in $(seq 200); do
    grep -q '"portcullis ready"' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
check "ExecStart serves instance $instance" bash -c "grep -q '\"domain\":\"$instance.example.com\"' '$log' &&
    python3 -c 'import urllib.request,sys; sys.exit(urllib.request.urlopen(\"http://127.0.0.1:$port/.portcullis/health\").status != 200)'"
check "the instance created its key ring 0600 in its state directory" bash -c "[ \"\$(stat -c '%U %a' $state/session-keys.json)\" = 'portcullis 600' ]"
kill -TERM "$pid"
stop_rc=0
wait "$pid" || stop_rc=$?
pid=
check "it exits 0 on SIGTERM (got $stop_rc)" test "$stop_rc" = 0
check "…after logging that it stopped" grep -q '"stopped"' "$log"
check "keygen --rotate run by root keeps the key ring owned by portcullis" bash -c "
    portcullis keygen --rotate --out $state/session-keys.json &&
    [ \"\$(stat -c '%U:%G %a' $state/session-keys.json)\" = 'portcullis:portcullis 600' ] &&
    [ \"\$(portcullis keys list --file $state/session-keys.json | wc -l)\" = 2 ]"
rm -f "/etc/portcullis/$instance.yaml"

echo "==> purge"
check "dpkg --purge" dpkg --purge portcullis
check "binary removed" test ! -e /usr/bin/portcullis
check "state removed" test ! -e /var/lib/portcullis
check "/etc/portcullis removed" test ! -e /etc/portcullis

checks_done
