#!/usr/bin/env bash
# Runs the Debian package under a real systemd: a minimal Debian bookworm
# (debootstrap, cached under /var/tmp) booted with systemd-nspawn, sharing
# this machine's network. Installs the package with apt from a signed APT
# repository (scripts/build-apt-repo.sh, a `file:` URI, `Signed-By:`, no
# `trusted=yes`; a tampered Release file must be refused), holding first an
# older version of the .deb (built by scripts/build-deb.sh, or the one given
# as $1), enables two instances (one on TCP, one on a Unix socket, its name
# with a '-'), and checks what only a running systemd can show: the system
# boots to "running", Type=notify start with the hardening of the unit, the
# STATUS line, `systemctl reload` with a good and with a broken config (each
# waited for by its outcome in the journal), `apt upgrade` to the .deb's
# version (edited configuration kept, running instances restarted), restart
# and stop through portcullis.target, the Unix socket and state
# directories; the operator's three commands (`portcullis new` against
# the real oidc-provider and SimpleSAMLphp, `systemctl enable --now`,
# `portcullis doctor`) with a Chromium login through nginx for each (needs
# the test command's Node.js modules, SimpleSAMLphp, nginx and Chromium);
# the online `systemd-analyze security` score, and finally
# `apt remove` (configuration kept) and `apt purge` (state gone). Needs root.
# Prints "N passed, N failed" however it ends. Whatever happens, the
# container is powered off (or killed), its copy of the base system and the
# temporary files are removed and the tmpfs it needed is unmounted; a
# process of the container still alive after that is a failed check. The
# cached base system stays for the next run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
ensure_apt debootstrap systemd-container curl python3

base=/var/tmp/portcullis-nspawn-base
root=/var/tmp/portcullis-nspawn-run
up_pid=
ct_pid=
leader=
ct_ns=
mounted=
# Runs on every exit, also when a step failed.
cleanup() {
    if [ -n "$ct_pid" ] && kill -0 "$ct_pid" 2>/dev/null; then
        [ -n "$leader" ] && nsenter -t "$leader" -m -u -i -p -- systemctl poweroff >/dev/null 2>&1
        for _ in $(seq 300); do kill -0 "$ct_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$ct_pid" 2>/dev/null; then
            bad "cleanup: the container did not power off within 30 s; killed"
            # Its init is the PID namespace's first process: killing it
            # ends every process of the container.
            [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
            kill -KILL "$ct_pid" 2>/dev/null
        fi
        wait "$ct_pid" 2>/dev/null
    fi
    ct_pid=
    if [ -n "$up_pid" ]; then
        kill -TERM "$up_pid" 2>/dev/null
        wait "$up_pid" 2>/dev/null
        up_pid=
    fi
    local left=
    if [ -n "$ct_ns" ]; then
        left=$(for p in /proc/[0-9]*; do
            [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ct_ns" ] &&
                ! grep -q '^State:.*Z' "$p/status" 2>/dev/null && echo "${p#/proc/}"
        done)
    fi
    if [ -n "$left" ]; then
        bad "cleanup: container processes left after it stopped: $(echo $left)"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null
    fi
    rm -rf "$root"
    [ -z "${work:-}" ] || rm -rf "$work"
    if [ -n "$mounted" ]; then
        umount /run/systemd/nspawn || bad "cleanup: umount /run/systemd/nspawn"
        mounted=
    fi
}
checks_init cleanup

deb=${1:-}
if [ -z "$deb" ]; then
    if ! DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} scripts/build-deb.sh >target/deb-build.log 2>&1; then
        tail -30 target/deb-build.log
        bad "build the package (full log in target/deb-build.log)"
        checks_done
    fi
    deb=$(ls target/deb/portcullis_*.deb | grep -v dbgsym | head -1)
fi

if [ ! -x "$base/lib/systemd/systemd" ]; then
    echo "==> debootstrap a minimal bookworm into $base (cached)"
    rm -rf "$base"
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    if ! debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,adduser,libxml2,libxmlsec1-openssl,curl \
        bookworm "$base" "${mirror:-http://deb.debian.org/debian}" >target/debootstrap.log 2>&1; then
        tail -20 target/debootstrap.log
        rm -rf "$base"
        bad "debootstrap (full log in target/debootstrap.log)"
        checks_done
    fi
fi

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
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$up_port/" && break; sleep 0.1; done

# The repository first holds an older version of the same package: the
# .deb with a lower version number, so that the upgrade below is a real one.
work=$(mktemp -d)
version=$(dpkg-deb -f "$deb" Version)
old_version="${version}~older1"
dpkg-deb -R "$deb" "$work/old"
sed -i "s/^Version: .*/Version: $old_version/" "$work/old/DEBIAN/control"
dpkg-deb -b --root-owner-group "$work/old" "$work/portcullis_${old_version}.deb" >/dev/null
apt_repo=$root/srv/portcullis-apt
check "an APT repository signed with reprepro holds the older version" \
    scripts/build-apt-repo.sh --out "$apt_repo" "$work/portcullis_${old_version}.deb"
install -d "$root/etc/apt/keyrings"
cp "$apt_repo/portcullis-archive-keyring.pgp" "$root/etc/apt/keyrings/"
# The entry the README shows, with this repository's file: URI.
cat >"$root/etc/apt/sources.list.d/portcullis.sources" <<EOF
Types: deb
URIs: file:/srv/portcullis-apt
Suites: stable
Components: main
Signed-By: /etc/apt/keyrings/portcullis-archive-keyring.pgp
EOF
# apt with only Portcullis' repository: the test needs nothing from a mirror.
apt_only() { # apt_only SOURCES-FILE RUNNER... apt-get ARGS...
    local list=$1
    shift
    "$@" -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 </dev/null
}
ns_apt() { ns env DEBIAN_FRONTEND=noninteractive "$@"; }
# A copy with one byte of its Release files changed, signatures untouched.
cp -a "$apt_repo" "$root/srv/portcullis-apt-tampered"
sed -i 's/^Label: Portcullis$/Label: Portcullix/' \
    "$root/srv/portcullis-apt-tampered/dists/stable/InRelease" \
    "$root/srv/portcullis-apt-tampered/dists/stable/Release"
sed 's|file:/srv/portcullis-apt|file:/srv/portcullis-apt-tampered|' \
    "$root/etc/apt/sources.list.d/portcullis.sources" >"$root/root/tampered.sources"
tampered_rc=0
tampered_out=$(apt_only /root/tampered.sources ns_apt apt-get update 2>&1) || tampered_rc=$?
check "apt refuses the tampered repository (exit $tampered_rc)" \
    bash -c '[ "$0" != 0 ] && grep -q "BADSIG" <<<"$1"' "$tampered_rc" "$tampered_out"
rm -rf "$root/srv/portcullis-apt-tampered" "$root/root/tampered.sources" "$root"/var/lib/apt/lists/*portcullis-apt-tampered*
check "apt-get update checks the repository's signature" \
    apt_only /etc/apt/sources.list.d/portcullis.sources ns_apt apt-get update -q
check "apt-get install portcullis from the repository" \
    apt_only /etc/apt/sources.list.d/portcullis.sources ns_apt apt-get install -y -q portcullis
check "…version $old_version" test "$(ns dpkg-query -W -f='${Version}' portcullis)" = "$old_version"
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
# The container's init: nspawn's first child may be a short-lived helper
# that forks it and exits, so wait for the child that has become systemd.
leader=
for _ in $(seq 300); do
    for p in $(pgrep -P "$ct_pid" || true); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
            leader=$p
            break 2
        fi
    done
    sleep 0.1
done
[ -n "$leader" ] || {
    tail -20 target/nspawn-console.log
    bad "the container's init started"
    checks_done
}
ct_ns=$(readlink "/proc/$leader/ns/pid")
in_ct() { nsenter -t "$leader" -m -u -i -p -- "$@"; }
# `is-system-running --wait` returns once the boot is over, with the state;
# it fails at once while systemd does not answer yet.
state=
for _ in $(seq 150); do
    state=$(timeout 60 nsenter -t "$leader" -m -u -i -p -- systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in initializing | starting | offline | unknown | "") sleep 0.2 ;; *) break ;; esac
done
check "the container booted to 'running' (got '${state:-nothing}')" \
    bash -c '[ "$0" = running ] || { nsenter -t "$1" -m -u -i -p -- systemctl --failed --no-pager; false; }' "$state" "$leader"

check "portcullis@demo is active (Type=notify, hardened unit)" in_ct systemctl is-active portcullis@demo
check "portcullis@team-wiki is active" in_ct systemctl is-active portcullis@team-wiki
check "STATUS= reaches systemctl status" bash -c "nsenter -t $leader -m -u -i -p -- systemctl show -p StatusText --value portcullis@demo | grep -q '^serving on 127.0.0.1:$gate_port'"
check "health over TCP" curl -fsS "http://127.0.0.1:$gate_port/.portcullis/health"
code() { curl -s -o /dev/null -w '%{http_code}' -H 'accept: application/json' "$@"; }
check "protected path needs a session" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 401
check "passthrough path reaches the app" test "$(code "http://127.0.0.1:$gate_port/public/")" = 404

# `systemctl reload` returns once ExecReload has sent SIGHUP, before the
# reload is done: wait for reload number N's outcome in the journal.
reload_outcome() { # reload_outcome N: prints the Nth outcome line
    local lines
    for _ in $(seq 200); do
        lines=$(in_ct journalctl -u portcullis@demo -o cat --no-pager |
            grep -E 'configuration reloaded|configuration reload refused' || true)
        if [ "$(printf '%s' "$lines" | grep -c .)" -ge "$1" ]; then
            printf '%s\n' "$lines" | sed -n "${1}p"
            return 0
        fi
        sleep 0.1
    done
    echo "no outcome of reload $1 in the journal within 20 s"
    return 1
}
reload_outcome_has() { # reload_outcome_has N PATTERN...
    local line
    line=$(reload_outcome "$1") || { echo "$line"; return 1; }
    shift
    echo "$line"
    for p in "$@"; do grep -q -- "$p" <<<"$line" || return 1; done
}

sed -i 's|    - prefix: /public/|    - prefix: /public/\n    - exact: /nginx-proxy.conf|' "$root/etc/portcullis/demo.yaml"
check "systemctl reload (good config)" in_ct systemctl reload portcullis@demo
check "…is applied" reload_outcome_has 1 'configuration reloaded'
check "the new passthrough path applies" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 200
pid_before=$(in_ct systemctl show -p MainPID --value portcullis@demo)
# Broken, and different where it is visible: it drops the new passthrough
# path, so a half-applied config would answer 401 there.
sed -i -e "s|url: http://127.0.0.1:$up_port|url: nope|" -e '/    - exact: \/nginx-proxy.conf/d' "$root/etc/portcullis/demo.yaml"
check "systemctl reload (broken config) returns" in_ct systemctl reload portcullis@demo
check "…is refused, the field named in the journal" reload_outcome_has 2 'configuration reload refused' upstream.url
check "still active, same process" test "$(in_ct systemctl show -p MainPID --value portcullis@demo)" = "$pid_before"
check "old config still in force" test "$(code "http://127.0.0.1:$gate_port/nginx-proxy.conf")" = 200
check "STATUS says the reload was refused" bash -c "nsenter -t $leader -m -u -i -p -- systemctl show -p StatusText --value portcullis@demo | grep -q refused"
sed -i "s|url: nope|url: http://127.0.0.1:$up_port|" "$root/etc/portcullis/demo.yaml"

check "Unix socket 0666 in /run/portcullis, owned by portcullis" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- stat -c '%U %a %F' /run/portcullis/team-wiki.sock)\" = 'portcullis 666 socket' ]"
check "served over the Unix socket to another user" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- runuser -u nobody -- curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/portcullis/team-wiki.sock http://wiki.example.com/minimal.yaml)\" = 200 ]"
check "state directories 0700, key rings 0600, owned by portcullis" bash -c "
    [ \"\$(nsenter -t $leader -m -u -i -p -- stat -c '%U %a' /var/lib/portcullis/team-wiki /var/lib/portcullis/team-wiki/session-keys.json | sort -u | tr '\n' ' ')\" = 'portcullis 600 portcullis 700 ' ]"

echo "==> portcullis new, systemctl enable --now, portcullis doctor; Chromium signs in"
# The three commands an operator runs, against the real providers (on this
# machine: the container shares its network), then a real browser login
# through nginx with the snippet `new` wrote: tests/browser.rs drives it.
check "OIDC (oidc-provider) and SAML (SimpleSAMLphp): new, enable --now, doctor passes, Chromium reaches the app" \
    env SYSTEMD_CONTAINER_ENTER="nsenter -t $leader -m -u -i -p --" \
    cargo test --locked --test browser -- --ignored --exact new_enable_doctor_and_sign_in_inside_a_systemd_container

echo "==> apt upgrade to $version"
check "the new version is added to the repository" scripts/build-apt-repo.sh --out "$apt_repo" "$deb"
echo "# edited by the operator" >>"$root/etc/portcullis/example.yaml.sample"
demo_before=$(sha256sum <"$root/etc/portcullis/demo.yaml")
pids_before="$(in_ct systemctl show -p MainPID --value portcullis@demo portcullis@team-wiki | tr '\n' ' ')"
ct_apt() { in_ct env DEBIAN_FRONTEND=noninteractive "$@"; }
in_apt() { apt_only /etc/apt/sources.list.d/portcullis.sources ct_apt "$@"; }
check "apt-get update" in_apt apt-get update -q
check "apt-get upgrade" in_apt apt-get upgrade -y -q
check "…installs $version" test "$(in_ct dpkg-query -W -f='${Version}' portcullis)" = "$version"
check "…keeps the edited conffile" grep -qx '# edited by the operator' "$root/etc/portcullis/example.yaml.sample"
check "…keeps the instance's configuration" test "$(sha256sum <"$root/etc/portcullis/demo.yaml")" = "$demo_before"
check "…restarts the running instances (MainPIDs were $pids_before)" bash -c '
    after=$(nsenter -t "$1" -m -u -i -p -- systemctl show -p MainPID --value portcullis@demo portcullis@team-wiki | tr "\n" " ")
    echo "MainPIDs now $after"
    for a in $after; do { [ "$a" != 0 ] && ! grep -qw "$a" <<<"$0"; } || exit 1; done
    nsenter -t "$1" -m -u -i -p -- systemctl is-active portcullis@demo portcullis@team-wiki' "$pids_before" "$leader"
check "…and serves again" curl -fsS "http://127.0.0.1:$gate_port/.portcullis/health"

security_rc=0
security=$(in_ct systemd-analyze security --no-pager portcullis@demo 2>&1) || security_rc=$?
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$security")
echo "       systemd-analyze security (online): ${score:-no score} (exit $security_rc)"
check "systemd-analyze security (online) at most 1.5" \
    python3 -c 'import sys; sys.exit(not (sys.argv[1] and float(sys.argv[1]) <= 1.5))' "$score"

pid_before=$(in_ct systemctl show -p MainPID --value portcullis@demo)
check "restart portcullis.target" in_ct systemctl restart portcullis.target
check "…restarts the instances" bash -c "[ \"\$(nsenter -t $leader -m -u -i -p -- systemctl show -p MainPID --value portcullis@demo)\" != '$pid_before' ] &&
    nsenter -t $leader -m -u -i -p -- systemctl is-active portcullis@demo portcullis@team-wiki"
check "stop portcullis.target stops every instance" bash -c "nsenter -t $leader -m -u -i -p -- systemctl stop portcullis.target &&
    ! nsenter -t $leader -m -u -i -p -- systemctl is-active -q portcullis@demo &&
    ! nsenter -t $leader -m -u -i -p -- systemctl is-active -q portcullis@team-wiki"
check "…and each stopped cleanly (exit 0 on SIGTERM)" bash -c "
    [ \"\$(nsenter -t $leader -m -u -i -p -- systemctl show -p Result --value portcullis@demo)\" = success ] &&
    [ \"\$(nsenter -t $leader -m -u -i -p -- systemctl show -p ExecMainStatus --value portcullis@demo)\" = 0 ] &&
    [ \"\$(nsenter -t $leader -m -u -i -p -- systemctl show -p Result --value portcullis@team-wiki)\" = success ]"
check "the socket file is gone, /run/portcullis stays" bash -c "nsenter -t $leader -m -u -i -p -- test -d /run/portcullis &&
    ! nsenter -t $leader -m -u -i -p -- test -e /run/portcullis/team-wiki.sock"
check "a missing config fails loudly" bash -c "! nsenter -t $leader -m -u -i -p -- systemctl start portcullis@nothere &&
    nsenter -t $leader -m -u -i -p -- journalctl -u portcullis@nothere -o cat --no-pager | grep -q 'cannot read the configuration file /etc/portcullis/nothere.yaml'"

echo "==> apt remove, apt purge"
check "apt-get remove portcullis" in_apt apt-get remove -y -q portcullis
check "…removes the binary, keeps configuration and state" bash -c "
    ! nsenter -t $leader -m -u -i -p -- test -e /usr/bin/portcullis &&
    nsenter -t $leader -m -u -i -p -- test -f /etc/portcullis/demo.yaml &&
    nsenter -t $leader -m -u -i -p -- test -f /var/lib/portcullis/demo/session-keys.json"
check "apt-get purge portcullis" in_apt apt-get purge -y -q portcullis
check "…removes the state and the package's conffiles" bash -c "
    ! nsenter -t $leader -m -u -i -p -- test -e /var/lib/portcullis &&
    ! nsenter -t $leader -m -u -i -p -- test -e /etc/portcullis/example.yaml.sample &&
    [ -z \"\$(nsenter -t $leader -m -u -i -p -- dpkg-query -W -f='\${Status}' portcullis 2>/dev/null | grep -v 'not-installed')\" ]"

checks_done
