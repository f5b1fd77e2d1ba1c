#!/usr/bin/env python3
"""Portcullis load benchmark driver (run it through scripts/bench-load.sh).

On 127.0.0.1 only, it starts:
  - a fast upstream: nginx serving one small static file,
  - nginx with a plain `proxy_pass` to it (two variants: with upstream
    keep-alive, the baseline, and nginx's default of a new upstream
    connection per request),
  - Portcullis (release build) in front of the same upstream,
then drives each with wrk at several connection counts, alternating targets
and repeating rounds, and writes bench-results/results.md, results.json and
chart.svg. It also measures Portcullis' resident memory (idle, under load,
holding N idle keep-alive connections) and its time from start to ready.

Every process it starts is stopped at the end; every request goes to
127.0.0.1; every loop is bounded in count and time.
"""

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEARER = "bench-monitoring-token-0123456789abcdef"
PAGE = b"<!doctype html><title>app</title>" + b"<p>hello from the upstream app</p>" * 20 + b"\n"

# name, what it is, port key, path, extra wrk headers
TARGETS = [
    ("upstream", "upstream direct (nginx static file)", "up", "/app/dashboard", []),
    ("nginx", "nginx proxy_pass, upstream keep-alive (baseline)", "ngx", "/app/dashboard", []),
    ("nginx_plain", "nginx proxy_pass, default (new upstream connection per request)", "ngx_plain", "/app/dashboard", []),
    ("session", "Portcullis, valid session cookie", "gate", "/app/dashboard", ["COOKIE"]),
    ("passthrough", "Portcullis, passthrough path", "gate", "/static/app.js", []),
    ("bearer", "Portcullis, passthrough bearer token", "gate", "/api/metrics", [f"Authorization: Bearer {BEARER}"]),
    ("unauth", "Portcullis, no session: 401", "gate", "/api/data", ["Accept: application/json"]),
]


def log(msg):
    print(f"[bench] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, headers=(), timeout=2.0):
    """One HTTP/1.1 GET on a fresh connection; returns the status or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            req = f"GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n"
            for h in headers:
                req += h + "\r\n"
            s.sendall((req + "\r\n").encode())
            data = s.recv(64)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            return int(m.group(1)) if m else None
    except OSError:
        return None


def wait_http(port, path="/", timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(port, path, timeout=0.5) is not None:
            return True
        time.sleep(0.02)
    return False


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def rss_mb(pid):
    return proc_status(pid).get("VmRSS", 0) / 1024.0


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """(ppid, utime + stime in clock ticks) of a live process, else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name is in parentheses and may hold spaces.
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def with_children(pid):
    """`pid` and its direct children (nginx's master and its workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st and st[0] == pid:
                pids.append(int(entry))
    return pids


def cpu_seconds(pids):
    """CPU time (user + system, every thread) the processes have used."""
    return sum((_stat(p) or (0, 0))[1] for p in pids) / CLK_TCK


class Processes:
    """Children started here, stopped by their own pid at the end."""

    def __init__(self):
        self.procs = []

    def start(self, args, log_path, **kw):
        logf = open(log_path, "ab")
        p = subprocess.Popen(args, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def nginx_conf(d, name, body):
    path = os.path.join(d, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes auto;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{body}
}}
""")
    return path


def gate_yaml(d, port, up_port, extra=""):
    token_hash = hashlib.sha256(BEARER.encode()).hexdigest()
    return f"""domain: app.test
scheme: http
listen: 127.0.0.1:{port}
state_dir: {d}/state
shutdown_timeout: 2s
upstream:
  url: http://127.0.0.1:{up_port}
session:
  secure_cookie: false
  key_file: {d}/keys.json
passthrough:
  paths:
    - prefix: /static/
  tokens:
    - name: prometheus
      sha256: {token_hash}
log:
  format: json
  level: info
{extra}"""


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(out):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    total = re.search(r"(\d+) requests in", out)

    def ms(v):
        m = re.match(r"([\d.]+)(\w+)", v)
        return float(m.group(1)) * UNITS[m.group(2)] if m else None

    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms(lat["50"]) if "50" in lat else None,
        "p99_ms": ms(lat["99"]) if "99" in lat else None,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "requests": int(total.group(1)) if total else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def run_wrk(port, path, headers, conns, duration, threads, pids=()):
    """One wrk run; with `pids`, also the CPU time those processes spent
    per request (from /proc: independent of who won the shared cores)."""
    args = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for h in headers:
        args += ["-H", h]
    args.append(f"http://127.0.0.1:{port}{path}")
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    cpu = cpu_seconds(pids) - cpu_before
    res = parse_wrk(out)
    res["cpu_us_per_req"] = cpu * 1e6 / res["requests"] if pids and res["requests"] else None
    return res


class Sampler(threading.Thread):
    """Peak VmRSS of a process while load runs."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0.0, threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))


# ---------------------------------------------------------------------------
# Idle keep-alive connections: each connection makes one request with the
# session cookie (so the server has served it), then stays open and idle.


async def _idle_client(port, n, cookie, hold, parallel, ready_file):
    import contextlib

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1024)), hard))
    except (ValueError, OSError):
        pass
    sem = asyncio.Semaphore(parallel)
    conns, failed = [], 0
    req = (f"GET /app/dashboard HTTP/1.1\r\nHost: app.test\r\nCookie: {cookie}\r\n\r\n").encode()

    async def one():
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
                w.write(req)
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if not head.startswith(b"HTTP/1.1 200") or not m:
                    raise OSError("unexpected answer")
                await asyncio.wait_for(r.readexactly(int(m.group(1))), 10)
                conns.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    with open(ready_file, "w") as f:
        json.dump({"open": len(conns), "failed": failed}, f)
    await asyncio.sleep(hold)
    for _, w in conns:
        with contextlib.suppress(Exception):
            w.close()


def idle_connections(gate_pid, port, cookie, n, d):
    ready = os.path.join(d, "idle-ready.json")
    hold = 8
    before = rss_mb(gate_pid)
    p = subprocess.Popen(
        [sys.executable, __file__, "idle-client", str(port), str(n), cookie, str(hold), ready],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(ready) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    time.sleep(2)  # let the server settle with all connections idle
    held = max(rss_mb(gate_pid) for _ in range(3) if time.sleep(0.3) is None)
    info = {"open": 0, "failed": n}
    if os.path.exists(ready):
        with open(ready) as f:
            info = json.load(f)
    try:
        p.wait(hold + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    time.sleep(1)
    return {"rss_before_mb": before, "rss_held_mb": held, "after_close_mb": rss_mb(gate_pid), **info}


# ---------------------------------------------------------------------------
# Start to ready.


def time_to_ready(binary, cfg, port, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = False
        while time.monotonic() - t0 < 10:
            if http_get(port, "/.portcullis/health", timeout=0.5) == 200:
                ok = True
                break
            time.sleep(0.001)
        elapsed = (time.monotonic() - t0) * 1000
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if ok:
            times.append(elapsed)
        time.sleep(0.2)
    return {"median_ms": statistics.median(times) if times else None, "runs_ms": [round(t, 1) for t in times]}


# ---------------------------------------------------------------------------
# Report.


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def write_report(res, outdir):
    conns = res["params"]["connections"]
    agg = res["aggregate"]
    lines = []
    p = res["params"]
    lines.append("# Portcullis load benchmark results\n")
    lines.append(
        f"Measured {res['when']} on {res['machine']}; load average before {res['load_before']}, "
        f"after {res['load_after']}. {p['rounds']} rounds of {p['duration']} s per target and "
        f"connection count, targets alternating; medians of the rounds. wrk with {p['threads']} threads. "
        "Ratios are against nginx `proxy_pass` with upstream keep-alive, measured in the same run.\n"
    )
    lines.append("Added p99 is the p99 latency minus the upstream's own p99 at the same connection count.\n")
    lines.append(
        "CPU µs/req is the CPU time (user + system, all threads, from /proc) of the process in front of "
        "the upstream (for the upstream row, the upstream itself) divided by the requests it served in the "
        "run: unlike req/s, it does not depend on how the shared cores were divided.\n"
    )
    for c in conns:
        base = agg.get(f"nginx@{c}", {}).get("rps")
        up99 = agg.get(f"upstream@{c}", {}).get("p99_ms")
        lines.append(f"\n## {c} connections\n")
        base_cpu = agg.get(f"nginx@{c}", {}).get("cpu_us_per_req")
        lines.append("| target | req/s | × nginx | p50 ms | p99 ms | added p99 ms | CPU µs/req | CPU × nginx |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, desc, *_ in TARGETS:
            a = agg.get(f"{name}@{c}")
            if not a:
                continue
            ratio = a["rps"] / base if base else None
            added = a["p99_ms"] - up99 if (a["p99_ms"] is not None and up99 is not None) else None
            cpu = a.get("cpu_us_per_req")
            cpu_ratio = cpu / base_cpu if (cpu is not None and base_cpu) else None
            lines.append(
                f"| {desc} | {fmt(a['rps'])} | {fmt(ratio, 2)} | {fmt(a['p50_ms'], 2)} | "
                f"{fmt(a['p99_ms'], 2)} | {fmt(added, 2)} | {fmt(cpu, 1)} | {fmt(cpu_ratio, 2)} |"
            )
    m = res["memory"]
    lines.append("\n## Memory and start\n")
    lines.append("| measure | value |")
    lines.append("|---|---:|")
    lines.append(f"| RSS idle after start | {fmt(m['idle_mb'], 1)} MB |")
    lines.append(f"| RSS peak under load (sampled during the Portcullis runs) | {fmt(m['load_peak_mb'], 1)} MB |")
    lines.append(f"| RSS idle after the load | {fmt(m['idle_after_load_mb'], 1)} MB |")
    ic = m.get("idle_conns")
    if ic:
        lines.append(
            f"| RSS holding {ic['open']:,} idle keep-alive connections ({ic['failed']} failed to open) | "
            f"{fmt(ic['rss_held_mb'], 1)} MB |"
        )
    for k, v in res["ready"].items():
        lines.append(f"| start to ready, {k} (median of {len(v['runs_ms'])}) | {fmt(v['median_ms'], 1)} ms |")
    lines.append("\n![requests per second relative to nginx, and added p99](chart.svg)\n")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_chart(res, outdir):
    conns = res["params"]["connections"]
    agg = res["aggregate"]
    names = [t for t in TARGETS if t[0] != "upstream"]
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
    W, H = 1010, 420
    pw, ph = 420, 280
    ox = [70, 560]
    oy = 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{W/2}" y="24" text-anchor="middle" font-size="15">Portcullis load benchmark ({res["when"]})</text>',
    ]

    def panel(x0, title, value, ymax, unit, target_line=None):
        out.append(f'<text x="{x0 + pw/2}" y="{oy - 14}" text-anchor="middle" font-size="13">{title}</text>')
        out.append(f'<line x1="{x0}" y1="{oy + ph}" x2="{x0 + pw}" y2="{oy + ph}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{oy}" x2="{x0}" y2="{oy + ph}" stroke="black"/>')
        for i in range(5):
            v = ymax * i / 4
            y = oy + ph - ph * i / 4
            out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + pw}" y2="{y}" stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end">{v:.2f}{unit}</text>')
        if target_line is not None:
            y = oy + ph - ph * min(target_line, ymax) / ymax
            out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + pw}" y2="{y}" stroke="#c00" stroke-dasharray="5,4"/>')
            out.append(f'<text x="{x0 + pw + 4}" y="{y + 4}" text-anchor="start" fill="#c00">{target_line}</text>')
        gw = pw / len(names)
        bw = (gw - 10) / len(conns)
        for gi, (name, desc, *_) in enumerate(names):
            for ci, c in enumerate(conns):
                v = value(name, c)
                if v is None:
                    continue
                h = ph * max(0.0, min(v, ymax)) / ymax
                x = x0 + gi * gw + 5 + ci * bw
                out.append(
                    f'<rect x="{x:.1f}" y="{oy + ph - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="{colors[ci % 4]}">'
                    f"<title>{desc}, {c} connections: {v:.2f}</title></rect>"
                )
            label = name.replace("_", " ")
            out.append(f'<text x="{x0 + gi * gw + gw/2:.1f}" y="{oy + ph + 16}" text-anchor="middle">{label}</text>')

    def ratio(name, c):
        base = agg.get(f"nginx@{c}", {}).get("rps")
        a = agg.get(f"{name}@{c}")
        return a["rps"] / base if a and base else None

    def added(name, c):
        a, u = agg.get(f"{name}@{c}"), agg.get(f"upstream@{c}")
        if not a or not u or a["p99_ms"] is None or u["p99_ms"] is None:
            return None
        return max(0.0, a["p99_ms"] - u["p99_ms"])

    rmax = max([ratio(n, c) or 0 for n, *_ in names for c in conns] + [1.2])
    amax = max([added(n, c) or 0 for n, *_ in names for c in conns] + [1.2])
    panel(ox[0], "requests/s relative to nginx proxy_pass (keep-alive)", ratio, rmax * 1.05, "×", 0.9)
    panel(ox[1], "added p99 latency over upstream direct (ms)", added, amax * 1.05, "", 1.0)
    for ci, c in enumerate(conns):
        x = 70 + ci * 140
        out.append(f'<rect x="{x}" y="{H - 30}" width="12" height="12" fill="{colors[ci % 4]}"/>')
        out.append(f'<text x="{x + 18}" y="{H - 20}">{c} connections</text>')
    out.append("</svg>")
    with open(os.path.join(outdir, "chart.svg"), "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", default="16,64,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--targets", default=",".join(t[0] for t in TARGETS))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/portcullis"))
    ap.add_argument("--cookie-bin", default=os.path.join(ROOT, "target/release/examples/bench_cookie"))
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    wanted = set(args.targets.split(","))
    targets = [t for t in TARGETS if t[0] in wanted]
    os.makedirs(args.out, exist_ok=True)

    d = tempfile.mkdtemp(prefix="portcullis-bench-")
    os.chmod(d, 0o755)
    www = os.path.join(d, "www")
    os.makedirs(www)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "hello.html"), "wb") as f:
        f.write(PAGE)
    os.chmod(os.path.join(www, "hello.html"), 0o644)
    ports = {k: free_port() for k in ("up", "ngx", "ngx_plain", "gate")}
    procs = Processes()
    res = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform_cpu()}",
        "load_before": loadavg(),
        "params": {"rounds": args.rounds, "duration": args.duration, "connections": conns, "threads": args.threads},
        "runs": [],
    }
    try:
        up_conf = nginx_conf(
            d,
            "upstream",
            f"""    server {{
        listen 127.0.0.1:{ports['up']};
        root {www};
        location / {{ default_type text/html; try_files /hello.html =404; }}
    }}""",
        )
        px_conf = nginx_conf(
            d,
            "proxy",
            f"""    upstream app {{ server 127.0.0.1:{ports['up']}; keepalive 512; }}
    server {{
        listen 127.0.0.1:{ports['ngx']};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{ports['ngx_plain']};
        location / {{ proxy_pass http://127.0.0.1:{ports['up']}; }}
    }}""",
        )
        up_nginx = procs.start(["nginx", "-p", d, "-c", up_conf], os.path.join(d, "upstream.log"))
        px_nginx = procs.start(["nginx", "-p", d, "-c", px_conf], os.path.join(d, "proxy.log"))

        cfg = os.path.join(d, "gate.yaml")
        with open(cfg, "w") as f:
            # Room for every idle connection of the memory test (the
            # default connections.max is 4096; more would wait unanswered
            # in the listen backlog).
            idle_room = f"connections:\n  max: {max(4096, args.idle_conns + 64)}\n"
            f.write(gate_yaml(d, ports["gate"], ports["up"], idle_room))
        subprocess.run([args.bin, "keygen", "--out", os.path.join(d, "keys.json")], check=True, capture_output=True)
        cookie = subprocess.run([args.cookie_bin, cfg], check=True, capture_output=True, text=True).stdout.strip()
        gate = procs.start([args.bin, "--config", cfg], os.path.join(d, "gate.log"))
        for k, p in ports.items():
            if not wait_http(p):
                raise SystemExit(f"{k} did not start on port {p}; logs in {d}")
        checks = {
            "session": http_get(ports["gate"], "/app/dashboard", [f"Cookie: {cookie}"]),
            "passthrough": http_get(ports["gate"], "/static/app.js"),
            "bearer": http_get(ports["gate"], "/api/metrics", [f"Authorization: Bearer {BEARER}"]),
            "unauth": http_get(ports["gate"], "/api/data", ["Accept: application/json"]),
        }
        log(f"sanity: {checks}")
        # Whose CPU time a run is charged to: the process in front of the
        # upstream (the upstream's own work is the same for every proxy).
        proxy_pids = {
            "up": with_children(up_nginx.pid),
            "ngx": with_children(px_nginx.pid),
            "ngx_plain": with_children(px_nginx.pid),
            "gate": [gate.pid],
        }
        if checks != {"session": 200, "passthrough": 200, "bearer": 200, "unauth": 401}:
            raise SystemExit(f"Portcullis answers are not as expected: {checks}; logs in {d}")
        time.sleep(1)
        idle_mb = rss_mb(gate.pid)

        sampler = Sampler(gate.pid)
        sampler.start()
        for r in range(args.rounds):
            for c in conns:
                order = targets[r % len(targets):] + targets[: r % len(targets)]
                for name, _desc, port_key, path, headers in order:
                    hs = [f"Cookie: {cookie}" if h == "COOKIE" else h for h in headers]
                    out = run_wrk(ports[port_key], path, hs, c, args.duration, args.threads, proxy_pids[port_key])
                    out.update({"target": name, "connections": c, "round": r})
                    res["runs"].append(out)
                    bad = out["non2xx"] if name != "unauth" else out["requests"] - out["non2xx"]
                    log(
                        f"round {r + 1} c={c:<4} {name:<12} {out['rps']:>10.0f} req/s  "
                        f"p50 {out['p50_ms']} ms  p99 {out['p99_ms']} ms  "
                        f"cpu {fmt(out['cpu_us_per_req'], 1)} us/req"
                        + (f"  UNEXPECTED STATUS x{bad}" if bad else "")
                        + (f"  {out['socket_errors']}" if out["socket_errors"] else "")
                    )
                    time.sleep(1)
        sampler.stop_ev.set()
        load_peak = max(sampler.peak, proc_status(gate.pid).get("VmHWM", 0) / 1024.0)
        time.sleep(2)
        idle_after = rss_mb(gate.pid)

        idle_conns = None
        if args.idle_conns > 0:
            log(f"opening {args.idle_conns} idle keep-alive connections")
            idle_conns = idle_connections(gate.pid, ports["gate"], cookie, args.idle_conns, d)
            log(f"idle connections: {idle_conns}")
        res["memory"] = {
            "idle_mb": idle_mb,
            "load_peak_mb": load_peak,
            "idle_after_load_mb": idle_after,
            "idle_conns": idle_conns,
        }
        procs.stop(gate)

        # Start to ready: no IdP; and OIDC with the provider down and its
        # discovery document cached in the state directory.
        ready = {}
        rport = free_port()
        rcfg = os.path.join(d, "ready.yaml")
        with open(rcfg, "w") as f:
            f.write(gate_yaml(d, rport, ports["up"]))
        ready["no IdP"] = time_to_ready(args.bin, rcfg, rport)
        closed = free_port()
        issuer = f"http://127.0.0.1:{closed}/realms/corp"
        ostate = os.path.join(d, "oidc-state")
        os.makedirs(ostate, exist_ok=True)
        with open(os.path.join(ostate, "oidc-provider.json"), "w") as f:
            json.dump(
                {
                    "issuer": issuer,
                    "fetched_at": int(time.time()),
                    "metadata": {
                        "issuer": issuer,
                        "authorization_endpoint": f"{issuer}/auth",
                        "token_endpoint": f"{issuer}/token",
                        "jwks_uri": f"{issuer}/certs",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                },
                f,
            )
        ocfg = os.path.join(d, "ready-oidc.yaml")
        with open(ocfg, "w") as f:
            f.write(
                gate_yaml(d, rport, ports["up"]).replace(f"state_dir: {d}/state", f"state_dir: {ostate}")
                + f"oidc:\n  issuer: {issuer}\n  client_id: app\n  client_secret: bench-secret-0123456789\n"
            )
        ready["OIDC, provider down, discovery cached"] = time_to_ready(args.bin, ocfg, rport)
        res["ready"] = ready
        log(f"ready: {ready}")
    finally:
        procs.stop_all()
    res["load_after"] = loadavg()

    agg = {}
    for name, *_ in TARGETS:
        for c in conns:
            rs = [r for r in res["runs"] if r["target"] == name and r["connections"] == c]
            if not rs:
                continue
            med = lambda k: statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None  # noqa: E731
            agg[f"{name}@{c}"] = {
                "rps": med("rps"),
                "p50_ms": med("p50_ms"),
                "p99_ms": med("p99_ms"),
                "cpu_us_per_req": med("cpu_us_per_req"),
                "rounds": len(rs),
            }
    res["aggregate"] = agg
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_report(res, args.out)
    write_chart(res, args.out)
    shutil.rmtree(d, ignore_errors=True)
    log(f"wrote {os.path.relpath(args.out, ROOT)}/results.md, results.json, chart.svg")


def platform_cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "idle-client":
        port, n, cookie, hold, ready = sys.argv[2:7]
        asyncio.run(_idle_client(int(port), int(n), cookie, float(hold), 256, ready))
    else:
        main()
