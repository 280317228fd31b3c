#!/usr/bin/env python3
"""What shared rate limits cost per request (issue 17): the same 1 KB download on the fs
backend, through the same gateway binary, with rate limits off, counted in memory, and counted
in a real Redis (Debian's redis-server, started here), loaded by wrk at --concurrency (64) on
loopback. Rows alternate within each round; the figures are medians over rounds.

Two loads: *closed* (each connection sends its next request when the last is answered: the
machine's ceiling, where latency is queueing) and *paced* (each connection one request every
--pace-ms, an open-ish load below the ceiling, where latency is the cost of a request).

Reported per row: requests/s, wrk's p50 and p99, gateway and Redis CPU per request; for the
Redis row also the gateway's own histogram of the limiter call (ratelimit_redis_duration_seconds)
as p50/p99 bucket bounds. "Added" is Redis minus memory (what choosing Redis costs) and Redis
minus off.

Usage: bench/rate_limit.sh [--rounds 3] [--duration 10] [--concurrency 64]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import API_KEY, CHILDREN, Gateway, cpu_seconds, free_port, lua_file, metric, stop_children, wrk  # noqa: E402

OBJECT = "0123456789abcdef0123456789abcdef.png"
ROWS = ("off", "memory", "redis")
MODES = ("closed", "paced")


def start_redis(binary, workdir):
    port = free_port()
    log = open(os.path.join(workdir, "redis.log"), "w")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=log, stderr=subprocess.STDOUT)
    CHILDREN.append(proc)
    deadline = time.monotonic() + 10
    while not pong(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"redis-server did not answer; see {workdir}/redis.log")
        time.sleep(0.05)
    return proc, port


def pong(port):
    """Whether Redis answers PING, over a socket: scripts/install-redis.sh builds the server
    only, so redis-cli may be missing."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def row_env(row, root, redis_port):
    env = {"IMAGE_GATEWAY_STORAGE__BACKEND": "fs", "IMAGE_GATEWAY_STORAGE__FS__ROOT": root,
           "IMAGE_GATEWAY_LOG__LEVEL": "warn"}
    if row == "off":
        env.update(IMAGE_GATEWAY_RATE_LIMIT__REQUESTS_PER_MINUTE="0", IMAGE_GATEWAY_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE="0")
    else:
        # Far above what the machine can serve: every request is counted, none refused.
        env.update(IMAGE_GATEWAY_RATE_LIMIT__REQUESTS_PER_MINUTE="1000000000")
    if row == "redis":
        env.update(IMAGE_GATEWAY_RATE_LIMIT__BACKEND="redis",
                   IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL=f"redis://127.0.0.1:{redis_port}")
    return env


def histogram_quantiles(admin_port, name, quantiles=(0.5, 0.99)):
    """Upper bucket bounds holding the given quantiles of a Prometheus histogram, in µs."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    buckets = []
    for line in lines:
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    out = {}
    for q in quantiles:
        bound = next((le for le, count in buckets if total and count >= q * total), None)
        out[f"p{int(q * 100)}_us"] = None if bound is None or bound == float("inf") else round(bound * 1e6)
    out["count"] = int(total)
    return out


def measure(gateway, redis_proc, url, args, lua):
    header = [f"X-API-Key: {API_KEY}"]
    if args.warmup > 0:
        wrk(url, header, args.concurrency, args.warmup, lua)
    pids = gateway.pids()
    cpu0, redis0 = cpu_seconds(pids), cpu_seconds([redis_proc.pid])
    result = wrk(url, header, args.concurrency, args.duration, lua)
    cpu1, redis1 = cpu_seconds(pids), cpu_seconds([redis_proc.pid])
    requests = max(result["requests"], 1)
    return {
        "rps": result["rps"],
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "errors": result["errors"] + result["non2xx"],
        "gateway_cpu_us": (cpu1 - cpu0) / requests * 1e6,
        "redis_cpu_us": (redis1 - redis0) / requests * 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--redis", required=True, help="redis-server (scripts/install-redis.sh)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="seconds per row before the measured run (0: none)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pace-ms", type=int, default=10, help="paced load: ms between a connection's requests")
    parser.add_argument("--out", default="bench/results/rate-limit.json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run bench/rate_limit.sh (it installs wrk from Debian)")
    workdir = tempfile.mkdtemp(prefix="ig-ratelimit-")
    root = os.path.join(workdir, "root")
    os.makedirs(root)
    with open(os.path.join(root, OBJECT), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(1016))
    luas = {"closed": lua_file(workdir, "done"), "paced": lua_file(workdir, "paced", pace_ms=args.pace_ms)}
    runs = {mode: {row: [] for row in ROWS} for mode in MODES}
    limiter = {mode: [] for mode in MODES}
    try:
        redis_proc, redis_port = start_redis(args.redis, workdir)
        for round_no in range(args.rounds):
            for mode in MODES:
                for row in ROWS:
                    gateway = Gateway(args.gateway, workdir, f"gateway-{row}-{mode}-{round_no}",
                                      row_env(row, root, redis_port))
                    url = f"http://127.0.0.1:{gateway.port}/v1/image/download/{OBJECT}"
                    figures = measure(gateway, redis_proc, url, args, luas[mode])
                    if row == "redis":
                        limiter[mode].append(histogram_quantiles(gateway.admin_port, "ratelimit_redis_duration_seconds"))
                        figures["fallbacks"] = metric(gateway.admin_port, "ratelimit_fallback_decisions_total")
                    gateway.stop(graceful=False)  # measured: no need to wait out shutdown.grace
                    runs[mode][row].append(figures)
                    print(f"round {round_no + 1} {mode:6} {row:7} {figures['rps']:9.0f} req/s"
                          f"  p50 {figures['p50_us'] / 1000:6.3f} ms  p99 {figures['p99_us'] / 1000:6.3f} ms"
                          f"  gateway {figures['gateway_cpu_us']:5.1f} µs/req  redis {figures['redis_cpu_us']:5.1f} µs/req"
                          f"  errors {figures['errors']}"
                          + (f"  fallbacks {figures['fallbacks']:.0f}" if row == "redis" else ""), flush=True)
    finally:
        stop_children()
    median = {mode: {row: {k: statistics.median(r[k] for r in runs[mode][row]) for k in runs[mode][row][0]}
                     for row in ROWS} for mode in MODES}
    added = {mode: {f"redis_minus_{base}": {q: median[mode]["redis"][q] - median[mode][base][q]
                                            for q in ("p50_us", "p99_us")}
                    for base in ("memory", "off")} for mode in MODES}
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "concurrency": args.concurrency, "duration_s": args.duration, "rounds": args.rounds,
        "pace_ms": args.pace_ms, "object_bytes": 1024, "runs": runs, "median": median, "added": added,
        "limiter_call": limiter,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    for mode in MODES:
        for base, delta in added[mode].items():
            print(f"{mode} added ({base}): p50 {delta['p50_us'] / 1000:+.3f} ms, p99 {delta['p99_us'] / 1000:+.3f} ms")
    print(f"limiter call (gateway histogram, bucket bounds): {limiter}")
    print(f"wrote {args.out}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
