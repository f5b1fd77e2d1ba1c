#!/usr/bin/env bash
# Stops the test IdP started by start.sh WORKDIR (PID from WORKDIR/php.pid).
set -euo pipefail

die() { echo "stop.sh: ERROR: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 WORKDIR"
PIDFILE="$1/php.pid"
if [ ! -f "$PIDFILE" ]; then
    echo "stop.sh: no $PIDFILE; nothing to stop" >&2
    exit 0
fi
PID="$(cat "$PIDFILE")"
[[ "$PID" =~ ^[0-9]+$ ]] || die "bad PID in $PIDFILE: '$PID'"

if kill -0 "$PID" 2>/dev/null; then
    # start.sh runs the server under setsid, so PID is also its process-group id
    # (the group holds the PHP_CLI_SERVER_WORKERS children).
    kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
        kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
    fi
    echo "stop.sh: stopped IdP (pid $PID)" >&2
else
    echo "stop.sh: IdP (pid $PID) was not running" >&2
fi
# make sure no worker of that group is left behind
kill -KILL -- "-$PID" 2>/dev/null || true
rm -f "$PIDFILE"
