#!/usr/bin/env bash
# Load benchmark: upstream direct vs nginx proxy_pass vs Portcullis, on
# 127.0.0.1 only, with wrk; also Portcullis' memory (idle, under load,
# holding many idle keep-alive connections) and its time to ready.
# Installs the Debian packages it needs (scripts/apt-packages-perf.txt),
# builds the release binary, writes bench-results/results.md, results.json
# and chart.svg. See docs/performance.md.
#
#   scripts/bench-load.sh                   # 3 rounds x 10 s, 16/64/256 connections, 10,000 idle
#   ROUNDS=1 DURATION=3 IDLE_CONNS=2000 scripts/bench-load.sh   # a quick look
#
# Take numbers on a quiet machine: the script prints the load average and
# records it with the results.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

mapfile -t pkgs < <(grep -v '^\s*$' scripts/apt-packages-perf.txt)
ensure_apt "${pkgs[@]}"
ensure_rust

echo "==> cargo build --release (portcullis, bench_cookie)"
cargo build --release --locked --bin portcullis --example bench_cookie

# 10,000 client sockets plus as many server sockets, plus the upstream pool.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "==> load average: $(cut -d' ' -f1-3 /proc/loadavg) (take final numbers below ~1.5)"
exec python3 scripts/bench-load-driver.py \
    --rounds "${ROUNDS:-3}" \
    --duration "${DURATION:-10}" \
    --connections "${CONNECTIONS:-16,64,256}" \
    --idle-conns "${IDLE_CONNS:-10000}" \
    "$@"
