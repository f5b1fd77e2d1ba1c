#!/usr/bin/env bash
# Runs the Debian package under a real systemd: a minimal Debian bookworm
# (debootstrap, cached under /var/tmp) booted with systemd-nspawn, sharing
# this machine's network. Installs the .deb (built by scripts/build-deb.sh,
# or the one given as $1), enables two instances (one on TCP, one on a Unix
# socket, its name with a '-'), and checks what only a running systemd can
# show: Type=notify start with the hardening of the unit, the STATUS line,
# `systemctl reload` with a good and with a broken config, restart and stop
# through portcullis.target, the Unix socket and state directories, and the
# online `systemd-analyze security` score. Needs root. Leaves nothing
# running; the cached base system stays for the next run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

pass=0
fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() {
    local what=$1
    shift
    if "$@" >/tmp/portcullis-ct.out 2>&1; then ok "$what"; else
        bad "$what"
        sed 's/^/       /' /tmp/portcullis-ct.out
    fi
}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for p in debootstrap systemd-container curl python3; do
    command -v "${p/systemd-container/systemd-nspawn}" >/dev/null 2>&1 || {
        echo "==> apt-get install $p"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    }
done

deb=${1:-}
if [ -z "$deb" ]; then
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} scripts/build-deb.sh >target/deb-build.log 2>&1 ||
        { tail -30 target/deb-build.log; exit 1; }
    deb=$(ls target/deb/portcullis_*.deb | grep -v dbgsym | head -1)
fi

base=/var/tmp/portcullis-nspawn-base
root=/var/tmp/portcullis-nspawn-run
if [ ! -x "$base/lib/systemd/systemd" ]; then
    echo "==> debootstrap a minimal bookworm into $base (cached)"
    rm -rf "$base"
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,adduser,libxml2,libxmlsec1-openssl,curl \
        bookworm "$base" "${mirror:-http://deb.debian.org/debian}" >target/debootstrap.log 2>&1 ||
        { tail -20 target/debootstrap.log; exit 1; }
fi

up_pid=
ct_pid=
mounted=
cleanup() {
    if [ -n "$ct_pid" ] && kill -0 "$ct_pid" 2>/dev/null; then
        leader=$(pgrep -P "$ct_pid" | head -1 || true)
        [ -n "$leader" ] && nsenter -t "$leader" -m -u -i -p -- systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 50); do kill -0 "$ct_pid" 2>/dev/null || break; sleep 0.1; done
        kill "$ct_pid" 2>/dev/null || true
    fi
    [ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null || true
    rm -rf "$root"
    [ -n "$mounted" ] && umount /run/systemd/nspawn 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$root"
cp -a "$base" "$root"

# nspawn keeps its bookkeeping under /run/systemd/nspawn and wants a tmpfs
# there; on a machine without systemd as PID 1, /run may be a plain dir.
mkdir -p /run/systemd/nspawn
if ! mountpoint -q /run/systemd/nspawn && [ "$(stat -f -c %T /run)" != tmpfs ]; then
    mount -t tmpfs tmpfs /run/systemd/nspawn
    mounted=1
fi
ns() { systemd-nspawn -q --register=no --keep-unit -D "$root" --pipe "$@"; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gate_port=$(port)
up_port=$(port)
python3 -m http.server "$up_port" --bind 127.0.0.1 --directory "$repo/config-examples" >/dev/null 2>&1 &
up_pid=$!

cp "$deb" "$root/root/portcullis.deb"
check "dpkg -i in the container" ns dpkg -i /root/portcullis.deb
cat >"$root/etc/portcullis/demo.yaml" <<EOF
domain: demo.example.com
listen: 127.0.0.1:$gate_port
upstream:
  url: http://127.0.0.1:$up_port
passthrough:
  paths:
    - prefix: /public/
EOF
cat >"$root/etc/portcullis/team-wiki.yaml" <<EOF
domain: wiki.example.com
listen: unix:/run/portcullis/team-wiki.sock
upstream:
  url: http://127.0.0.1:$up_port
passthrough:
  paths:
    - exact: /minimal.yaml
EOF
check "enable both instances" ns sh -c '
    chgrp portcullis /etc/portcullis/demo.yaml /etc/portcullis/team-wiki.yaml &&
    chmod 0640 /etc/portcullis/demo.yaml /etc/portcullis/team-wiki.yaml &&
    systemctl enable portcullis@demo portcullis@team-wiki'

echo "==> boot"
systemd-nspawn -q --register=no --keep-unit -D "$root" --boot >target/nspawn-console.log 2>&1 &
ct_pid=$!
leader=
for _ in $(seq 100); do
    leader=$(pgrep -P "$ct_pid" | head -1 || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
in_ct() { nsenter -t "$leader" -m -u -i -p -- "$@"; }
for _ in $(seq 150); do
    state=$(in_ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
    sleep 0.2
done
echo "       system state: $state"

check "portcullis@demo is active (Type=notify, hardened unit)" in_ct systemctl is-active portcullis@demo
check "portcullis@team-wiki is active" in_ct systemctl is-active portcullis@team-wiki
check "STATUS= reaches systemctl status" bash -c "nsenter -t $leader -m -u -i -p -- systemctl show -p StatusText --value portcullis@demo | grep -q '^serving on 127.0.0.1:$gate_port'"
check "health over TCP" curl -fsS "http://127.0.0.1:$gate_port/.portcullis/health"
code() { curl -s -o /dev/null -w '%{http_code}' -H 'accept: application/json' "$@"; }
check "protected path needs a session" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 401
check "passthrough path reaches the app" test "$(code "http://127.0.0.1:$gate_port/public/")" = 404

sed -i 's|    - prefix: /public/|    - prefix: /public/\n    - exact: /nginx-proxy.conf|' "$root/etc/portcullis/demo.yaml"
check "systemctl reload (good config)" in_ct systemctl reload portcullis@demo
sleep 0.5
check "the new passthrough path applies" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 200
pid_before=$(in_ct systemctl show -p MainPID --value portcullis@demo)
sed -i "s|url: http://127.0.0.1:$up_port|url: nope|" "$root/etc/portcullis/demo.yaml"
check "systemctl reload (broken config) returns" in_ct systemctl reload portcullis@demo
sleep 0.5
check "still active, same process" test "$(in_ct systemctl show -p MainPID --value portcullis@demo)" = "$pid_before"
check "old config still in force" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 200
check "the refusal is in the journal with the field" bash -c "nsenter -t $leader -m -u -i -p -- journalctl -u portcullis@demo -o cat --no-pager | grep 'reload refused' | grep -q upstream.url"
check "STATUS says the reload was refused" bash -c "nsenter -t $leader -m -u -i -p -- systemctl show -p StatusText --value portcullis@demo | grep -q refused"
sed -i "s|url: nope|url: http://127.0.0.1:$up_port|" "$root/etc/portcullis/demo.yaml"

check "Unix socket 0666 in /run/portcullis, owned by portcullis" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- stat -c '%U %a %F' /run/portcullis/team-wiki.sock)\" = 'portcullis 666 socket' ]"
check "served over the Unix socket to another user" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- runuser -u nobody -- curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/portcullis/team-wiki.sock http://wiki.example.com/minimal.yaml)\" = 200 ]"
check "state directories 0700, key rings 0600, owned by portcullis" bash -c "
    [ \"\$(nsenter -t $leader -m -u -i -p -- stat -c '%U %a' /var/lib/portcullis/team-wiki /var/lib/portcullis/team-wiki/session-keys.json | sort -u | tr '\n' ' ')\" = 'portcullis 600 portcullis 700 ' ]"

security=$(in_ct systemd-analyze security --no-pager portcullis@demo 2>&1 | tail -1)
echo "       $security"
check "systemd-analyze security (online) at most 1.5" bash -c "awk '{exit !(\$(NF-2) <= 1.5)}' <<<'$security'"

pid_before=$(in_ct systemctl show -p MainPID --value portcullis@demo)
check "restart portcullis.target" in_ct systemctl restart portcullis.target
check "…restarts the instances" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- systemctl show -p MainPID --value portcullis@demo)\" != '$pid_before' ] &&
    nsenter -t $leader -m -u -i -p -- systemctl is-active portcullis@demo portcullis@team-wiki"
check "stop portcullis.target stops every instance" bash -c "nsenter -t $leader -m -u -i -p -- systemctl stop portcullis.target &&
    ! nsenter -t $leader -m -u -i -p -- systemctl is-active -q portcullis@demo &&
    ! nsenter -t $leader -m -u -i -p -- systemctl is-active -q portcullis@team-wiki"
check "the socket file is gone, /run/portcullis stays" bash -c "nsenter -t $leader -m -u -i -p -- test -d /run/portcullis &&
    ! nsenter -t $leader -m -u -i -p -- test -e /run/portcullis/team-wiki.sock"
check "a missing config fails loudly" bash -c "! nsenter -t $leader -m -u -i -p -- systemctl start portcullis@nothere &&
    nsenter -t $leader -m -u -i -p -- journalctl -u portcullis@nothere -o cat --no-pager | grep -q 'cannot read the configuration file /etc/portcullis/nothere.yaml'"

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
