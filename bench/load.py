#!/usr/bin/env python3
"""Load benchmark: the gateway against what an operator would deploy instead.

Configurations, all on loopback, loaded by the same client (wrk) in the same run:
  gateway-s3    the gateway (release build) streaming from Garage
  direct        GET straight from Garage with a presigned URL
  nginx-proxy   Debian's nginx as a reverse proxy in front of Garage (same presigned URLs)
  gateway-fs    the gateway streaming from its `fs` backend
  nginx-static  nginx serving the same files statically
and, on request (--configs), gateway-fs-inline: the `fs` backend with storage.fs.inline_reads.

The gateway reaches Garage with storage.s3.pool_idle_timeout = 0s: a new connection per
request, as nginx's default proxy_pass does, because Garage leaves Nagle on and a reused
connection waits ~44 ms per small object (see docs/benchmarks.md).

Every cell (object size x concurrency) runs each configuration once per round, in
interleaved order, for several rounds; the report gives medians and the ratio of each pair.
Run through bench/run.sh, which installs the tools and builds the gateway.
"""

import argparse
import datetime
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from servers import (API_KEY, CHILDREN, Garage, Gateway, Nginx, cpu_seconds, free_port, peak_rss_kib,
                     reset_peak_rss, stop_children)

SIZES = {"10KB": 10_000, "50KB": 50_000, "1MB": 1_000_000, "10MB": 10_000_000}
CONFIGS = ["gateway-s3", "direct", "nginx-proxy", "gateway-fs", "nginx-static"]

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# --- load ----------------------------------------------------------------------------------


def wrk(url, headers, concurrency, duration, lua):
    threads = 1 if concurrency == 1 else 2
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "60s", "-s", lua]
    for h in headers:
        command += ["-H", h]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise SystemExit(f"wrk printed no result: {out.stdout}\n{out.stderr}")


def start_to_ready(binary, workdir, runs):
    """Milliseconds from spawning the process to the first 200 from /readyz (fs backend)."""
    samples = []
    root = os.path.join(workdir, "ready-root")
    for _ in range(runs):
        admin = free_port()
        env = dict(os.environ, IMAGE_GATEWAY_LISTEN=f"127.0.0.1:{free_port()}",
                   IMAGE_GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{admin}",
                   IMAGE_GATEWAY_STORAGE__FS__ROOT=root, IMAGE_GATEWAY_LOG__LEVEL="warn")
        started = time.monotonic()
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        CHILDREN.append(proc)
        request = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ready_ms = None
        while time.monotonic() - started < 10:
            try:
                with socket.create_connection(("127.0.0.1", admin), timeout=1) as s:
                    s.sendall(request)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        ready_ms = (time.monotonic() - started) * 1000
                        break
            except OSError:
                pass
            time.sleep(0.001)
        proc.kill()  # not SIGTERM: a graceful stop waits out shutdown.grace
        proc.wait()
        if ready_ms is None:
            raise SystemExit("the gateway did not become ready within 10 s")
        samples.append(ready_ms)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True, help="the release binary")
    parser.add_argument("--garage", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per run (10 MB at c>=64: x3)")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", required=True, help="JSON results file")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    configs = args.configs.split(",")

    workdir = tempfile.mkdtemp(prefix="ig-bench-")
    os.chmod(workdir, 0o755)  # nginx workers (another user when started as root) read fs-root
    lua = os.path.join(workdir, "report.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    root = os.path.join(workdir, "fs-root")
    os.makedirs(root)
    os.makedirs(os.path.join(workdir, "garage"))
    garage = Garage(args.garage, os.path.join(workdir, "garage"))
    names = {}
    for label, size in SIZES.items():
        name = secrets.token_hex(16) + ".png"
        data = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(size - 8)
        garage.put(name, data)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        names[label] = name
    s3_env = {
        "IMAGE_GATEWAY_STORAGE__BACKEND": "s3",
        "IMAGE_GATEWAY_STORAGE__S3__ENDPOINT": f"http://127.0.0.1:{garage.s3_port}",
        "IMAGE_GATEWAY_STORAGE__S3__BUCKET": garage.bucket,
        "IMAGE_GATEWAY_STORAGE__S3__ACCESS_KEY_ID": garage.access_key,
        "IMAGE_GATEWAY_STORAGE__S3__SECRET_ACCESS_KEY": garage.secret_key,
        "IMAGE_GATEWAY_STORAGE__S3__POOL_IDLE_TIMEOUT": os.environ.get("IG_BENCH_S3_POOL_IDLE_TIMEOUT", "0s"),
        # These rows measure the storage path: every request reads storage.
        "IMAGE_GATEWAY_CACHE__ENABLED": "false",
    }
    fs_env = {"IMAGE_GATEWAY_STORAGE__BACKEND": "fs", "IMAGE_GATEWAY_STORAGE__FS__ROOT": root}
    servers = {
        "gateway-s3": Gateway(args.gateway, workdir, "gateway-s3", s3_env),
        "gateway-fs": Gateway(args.gateway, workdir, "gateway-fs", fs_env),
        "gateway-fs-inline": Gateway(args.gateway, workdir, "gateway-fs-inline",
                                     dict(fs_env, IMAGE_GATEWAY_STORAGE__FS__INLINE_READS="true")),
        "gateway-fs-pool": Gateway(args.gateway, workdir, "gateway-fs-pool",
                                   dict(fs_env, IMAGE_GATEWAY_STORAGE__FS__INLINE_READS="false")),
        "nginx": Nginx(workdir, garage.s3_port, root),
    }
    gateway_header = [f"X-API-Key: {API_KEY}"]

    def target(config, label):
        name = names[label]
        if config.startswith("gateway"):
            server = servers[config]
            return f"http://127.0.0.1:{server.port}/v1/image/download/{name}", gateway_header, server.pids()
        if config == "direct":
            return f"http://127.0.0.1:{garage.s3_port}{garage.presign('GET', name)}", [], [garage.proc.pid]
        nginx = servers["nginx"]
        if config == "nginx-proxy":
            return f"http://127.0.0.1:{nginx.proxy_port}{garage.presign('GET', name)}", [], nginx.pids()
        return f"http://127.0.0.1:{nginx.static_port}/v1/image/download/{name}", [], nginx.pids()

    # Every URL answers 200 with the whole object before anything is measured.
    for config in configs:
        for label in sizes:
            url, headers, _ = target(config, label)
            request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    body = r.read()
            except urllib.error.HTTPError as e:
                raise SystemExit(f"{config} {label}: {e.code} {e.read()[:300]!r}")
            if len(body) != SIZES[label]:
                raise SystemExit(f"{config} {label}: {len(body)} bytes, want {SIZES[label]}")

    results = []
    total = args.rounds * len(sizes) * len(levels) * len(configs)
    done = 0
    for round_ in range(args.rounds):
        for label in sizes:
            for c in levels:
                order = configs if round_ % 2 == 0 else list(reversed(configs))
                for config in order:
                    url, headers, pids = target(config, label)
                    duration = args.duration * (3 if SIZES[label] >= 10_000_000 and c >= 64 else 1)
                    rss_reset = reset_peak_rss(pids[0]) if config.startswith("gateway") else False
                    cpu_before = cpu_seconds(pids)
                    garage_before = cpu_seconds([garage.proc.pid])
                    run = wrk(url, headers, c, duration, lua)
                    run.update(
                        config=config, size=label, concurrency=c, round=round_,
                        cpu_s=cpu_seconds(pids) - cpu_before,
                        garage_cpu_s=cpu_seconds([garage.proc.pid]) - garage_before,
                        peak_rss_kib=peak_rss_kib(pids[0]) if rss_reset else None,
                    )
                    results.append(run)
                    done += 1
                    print(f"[{done}/{total}] round {round_ + 1} {label:>5} c={c:<3} {config:<12} "
                          f"{run['requests'] / (run['duration_us'] / 1e6):9.0f} req/s "
                          f"{run['bytes'] / (run['duration_us'] / 1e6) / 1e6:8.1f} MB/s "
                          f"p99 {run['p99_us'] / 1000:7.1f} ms errors {run['errors'] + run['non2xx']}",
                          flush=True)

    ready = start_to_ready(args.gateway, workdir, 15)
    for server in servers.values():
        server.stop()
    garage.stop()
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "versions": {
            "gateway": subprocess.run([args.gateway, "--version"], capture_output=True, text=True).stdout.strip(),
            "garage": subprocess.run([args.garage, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[0],
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.strip().splitlines()[0],
        },
        "settings": {"rounds": args.rounds, "duration_s": args.duration, "sizes": sizes, "concurrency": levels},
        "start_to_ready_ms": ready,
        "runs": results,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}; work files in {workdir}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_children()
