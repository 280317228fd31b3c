#!/usr/bin/env python3
"""Load benchmark: the gateway against what an operator would deploy instead.

Stores (--stores): MinIO (the main column: no Nagle delay, so "direct" is a fair baseline) and
Garage (a second column). For each store, all on loopback, loaded by the same client (wrk):
  gateway           the gateway (release build), hot-object cache off: every GET reads the store
  gateway-cache     the same with its hot-object cache on (cache.* defaults: 64 MiB, 1 MiB objects)
  gateway-before    with --gateway-before BIN: an earlier build, cache off (a before/after row)
  direct            GET straight from the store with a presigned URL
  nginx-proxy       Debian's nginx as a reverse proxy in front of the store (same presigned URLs)
  s3-gateway        NGINX's nginx-s3-gateway (nginx + njs SigV4, bench/s3_gateway.py), proxy_cache off
  s3-gateway-cache  the same with upstream's proxy_cache as shipped (on disk, proxy_cache_lock)
and on the fs backend: gateway (its folder), gateway-before (with --gateway-before) and nginx-static
(nginx serving the same files).
Rows are named config/store, e.g. gateway-cache/minio.

Workloads:
  single   one object per size (--sizes), every concurrency (--concurrency);
  hotset   --hotset objects of 10-50 KB requested with Zipf(1.0) popularity (wrk picks each
           request's object), at --hotset-concurrency; every object is fetched once first;
  herd     one new 1 MB object, 256 connections sending their first GET at once: errors, time to
           the last byte, and the GETs that reached MinIO (its own request counter);
  memory   gateway-cache with a full cache, then 256 concurrent 10 MB downloads: peak RSS.

The gateway reaches Garage with storage.s3.pool_idle_timeout = 0s (a new connection per
request, as nginx's default proxy_pass does): Garage leaves Nagle on and a reused connection
waits ~44 ms per small object (see docs/benchmarks.md). MinIO gets the default pool.

Every cell runs each configuration once per round, in interleaved order, for several rounds;
the report gives medians and the ratio of each pair. Run through bench/run.sh, which installs
the tools and builds the gateway.
"""

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from s3_gateway import NginxS3Gateway
from servers import (
    API_KEY,
    CHILDREN,
    Garage,
    Gateway,
    Minio,
    Nginx,
    cpu_model,
    cpu_seconds,
    free_port,
    herd,
    lua_file,
    metric,
    peak_rss_kib,
    reset_peak_rss,
    stop_children,
    wrk,
)

SIZES = {"10KB": 10_000, "50KB": 50_000, "1MB": 1_000_000, "10MB": 10_000_000}
STORE_CONFIGS = ["gateway", "gateway-cache", "direct", "nginx-proxy", "s3-gateway", "s3-gateway-cache"]
FS_CONFIGS = ["gateway", "nginx-static"]
HERD_CONFIGS = ["gateway-cache", "gateway", "s3-gateway-cache", "s3-gateway", "direct"]

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


class Row:
    """One configuration: where its requests go and whose CPU they cost."""

    def __init__(self, name, port, path, pids, headers=(), store=None, gateway=None):
        self.name, self.port, self.path, self.pids = name, port, path, pids
        self.headers, self.store, self.gateway = list(headers), store, gateway

    def url(self, object_name):
        return f"http://127.0.0.1:{self.port}{self.path(object_name)}"


def fetch(row, name, want):
    request = urllib.request.Request(row.url(name), headers=dict(h.split(": ", 1) for h in row.headers))
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{row.name} {name}: {e.code} {e.read()[:300]!r}") from None
    if body != want:
        raise SystemExit(f"{row.name} {name}: {len(body)} bytes that differ from the {len(want)} stored")


def random_object(size):
    return secrets.token_hex(16) + ".png", b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(size - 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True, help="the release binary")
    parser.add_argument("--gateway-before", help="an earlier release binary, for the gateway-before rows")
    parser.add_argument("--minio", help="the minio binary (mc beside it)")
    parser.add_argument("--garage", help="the garage binary")
    parser.add_argument("--s3-gateway", help="the nginx-s3-gateway tree (for the s3-gateway rows)")
    parser.add_argument("--stores", default="minio", help="minio and/or garage; fs rows always run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per run (10 MB at c>=64: x3)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of the discarded run per row before any measured one (0: none; the hot set's: 1)")
    parser.add_argument("--ready-runs", type=int, default=15, help="starts timed to /readyz")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--configs", default=",".join(STORE_CONFIGS),
                        help="store configurations (fs rows: gateway, nginx-static)")
    parser.add_argument("--fs", default=",".join(FS_CONFIGS), help="fs configurations ('' for none)")
    parser.add_argument("--hotset", type=int, default=300, help="objects in the hot set (0: no hot-set runs)")
    parser.add_argument("--hotset-concurrency", default="64")
    parser.add_argument("--no-herd", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", required=True, help="JSON results file")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    levels = [int(c) for c in args.concurrency.split(",") if c]
    hot_levels = [int(c) for c in args.hotset_concurrency.split(",") if c]
    configs = [c for c in args.configs.split(",") if c]
    fs_configs = [c for c in args.fs.split(",") if c]
    if not args.s3_gateway and any(c.startswith("s3-gateway") for c in configs):
        parser.error("the s3-gateway rows need --s3-gateway")

    workdir = tempfile.mkdtemp(prefix="ig-bench-")
    os.chmod(workdir, 0o755)  # nginx workers (another user when started as root) read fs-root

    def folder(name):
        path = os.path.join(workdir, name)
        os.makedirs(path)
        return path

    root = folder("fs-root")
    stores = {}
    for store_name in args.stores.split(","):
        if store_name == "minio":
            stores["minio"] = Minio(args.minio, folder("minio"))
        elif store_name == "garage":
            stores["garage"] = Garage(args.garage, folder("garage"))
        elif store_name:
            raise SystemExit(f"unknown store {store_name}")

    objects = {}  # name -> bytes, stored everywhere

    def store_everywhere(name, data):
        for store in stores.values():
            store.put(name, data)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        objects[name] = data

    names = {}
    for label in sizes:
        name, data = random_object(SIZES[label])
        store_everywhere(name, data)
        names[label] = name
    # The hot set: sizes spread over 10-50 KB, in an order unrelated to popularity.
    hot = []
    for i in range(args.hotset):
        name, data = random_object(10_000 + (i * 7919) % 40_001)
        store_everywhere(name, data)
        hot.append(name)

    gateway_header = [f"X-API-Key: {API_KEY}"]
    download = lambda name: f"/v1/image/download/{name}"  # noqa: E731
    rows = {}
    for store_name, store in stores.items():
        env = store.gateway_env()
        if store_name == "garage":
            env["IMAGE_GATEWAY_STORAGE__S3__POOL_IDLE_TIMEOUT"] = os.environ.get("IG_BENCH_S3_POOL_IDLE_TIMEOUT", "0s")
        presigned = lambda name, store=store: store.presign("GET", name)  # noqa: E731
        store_pids = lambda store=store: [store.proc.pid]  # noqa: E731
        for config in configs:
            row_name = f"{config}/{store_name}"
            if config in ("gateway", "gateway-cache", "gateway-before"):
                cache = "true" if config == "gateway-cache" else "false"
                binary = args.gateway_before if config == "gateway-before" else args.gateway
                if not binary:
                    raise SystemExit("gateway-before needs --gateway-before")
                g = Gateway(binary, workdir, f"{config}-{store_name}", dict(env, IMAGE_GATEWAY_CACHE__ENABLED=cache))
                rows[row_name] = Row(row_name, g.port, download, g.pids, gateway_header, store, g)
            elif config == "direct":
                rows[row_name] = Row(row_name, store.s3_port, presigned, store_pids, store=store)
            elif config == "nginx-proxy":
                n = Nginx(folder(f"nginx-{store_name}"), store.s3_port, root)
                rows[row_name] = Row(row_name, n.proxy_port, presigned, n.pids, store=store)
            elif config in ("s3-gateway", "s3-gateway-cache"):
                n = NginxS3Gateway(args.s3_gateway, workdir, store.s3_port, store.bucket, store.access_key,
                                   store.secret_key, cache=config == "s3-gateway-cache", access_log=True)
                rows[row_name] = Row(row_name, n.port, lambda name: f"/{name}", n.pids, store=store)
            else:
                raise SystemExit(f"unknown configuration {config}")
    if fs_configs:
        for config in fs_configs:
            if config in ("gateway", "gateway-before"):
                binary = args.gateway_before if config == "gateway-before" else args.gateway
                if not binary:
                    raise SystemExit("gateway-before needs --gateway-before")
                g = Gateway(binary, workdir, f"{config}-fs",
                            {"IMAGE_GATEWAY_STORAGE__BACKEND": "fs", "IMAGE_GATEWAY_STORAGE__FS__ROOT": root})
                rows[f"{config}/fs"] = Row(f"{config}/fs", g.port, download, g.pids, gateway_header, gateway=g)
            elif config == "nginx-static":
                n = Nginx(folder("nginx-fs"), 9, root)
                rows["nginx-static/fs"] = Row("nginx-static/fs", n.static_port, download, n.pids)
            else:
                raise SystemExit(f"unknown fs configuration {config}")

    # Every row answers every object exactly before anything is measured (this also warms the
    # caches with the hot set and the single objects).
    for row in rows.values():
        for name in list(names.values()) + hot:
            fetch(row, name, objects[name])

    results = []

    def measure(row, label, c, duration, lua, url):
        rss_reset = reset_peak_rss(row.gateway.proc.pid) if row.gateway else False
        cpu_before = cpu_seconds(row.pids())
        store_before = cpu_seconds([row.store.proc.pid]) if row.store else 0
        run = wrk(url, row.headers, c, duration, lua)
        run.update(
            config=row.name, size=label, concurrency=c,
            cpu_s=cpu_seconds(row.pids()) - cpu_before,
            store_cpu_s=(cpu_seconds([row.store.proc.pid]) - store_before) if row.store else None,
            peak_rss_kib=peak_rss_kib(row.gateway.proc.pid) if rss_reset else None,
        )
        return run

    done_lua = lua_file(workdir, "done")
    hot_lua = {row.name: lua_file(workdir, f"hot-{i}", [row.path(n) for n in hot]) for i, row in enumerate(rows.values())}
    # A discarded warm-up run per row: nginx-s3-gateway's cache stalls some requests for its
    # 500 ms lock-wait step during its first seconds, and pools and page caches fill too.
    for row in rows.values() if args.warmup > 0 else ():
        wrk(row.url(names[sizes[0]]) if sizes else f"http://127.0.0.1:{row.port}",
            row.headers, 16, args.warmup, done_lua if sizes else hot_lua[row.name])
        if hot:
            wrk(f"http://127.0.0.1:{row.port}", row.headers, 16, 1, hot_lua[row.name])
    cells = [(label, c) for label in sizes for c in levels] + [("hotset", c) for c in hot_levels if hot]
    total = args.rounds * len(cells) * len(rows)
    for round_ in range(args.rounds):
        for label, c in cells:
            order = list(rows.values()) if round_ % 2 == 0 else list(reversed(rows.values()))
            for row in order:
                if label == "hotset":
                    run = measure(row, label, c, args.duration, hot_lua[row.name], f"http://127.0.0.1:{row.port}")
                else:
                    duration = args.duration * (3 if SIZES[label] >= 10_000_000 and c >= 64 else 1)
                    run = measure(row, label, c, duration, done_lua, row.url(names[label]))
                run["round"] = round_
                results.append(run)
                seconds = run["duration_us"] / 1e6
                print(f"[{len(results)}/{total}] round {round_ + 1} {label:>6} c={c:<3} {row.name:<24} "
                      f"{run['requests'] / seconds:9.0f} req/s {run['bytes'] / seconds / 1e6:8.1f} MB/s "
                      f"p99 {run['p99_us'] / 1000:7.1f} ms CPU/req {run['cpu_s'] / max(run['requests'], 1) * 1e6:6.0f} us "
                      f"errors {run['errors'] + run['non2xx']}", flush=True)

    herds = []
    if not args.no_herd and "minio" in stores:
        minio = stores["minio"]
        for config in HERD_CONFIGS:
            row = rows.get(f"{config}/minio")
            if not row:
                continue
            name, data = random_object(1_000_000)
            minio.put(name, data)
            before = minio.get_requests()
            answers, released = herd(row.port, row.path(name), row.headers)
            errors = sum(1 for status, body, _ in answers if status != 200 or len(body) != 1_000_000)
            seconds = max(at for _, _, at in answers) - released
            reads = minio.get_requests() - before
            herds.append({"config": row.name, "clients": 256, "errors": errors, "last_byte_s": round(seconds, 4),
                          "storage_reads": reads})
            print(f"herd {row.name:<24} 256 first GETs: {reads} storage reads, last byte after "
                  f"{seconds * 1000:.0f} ms, errors {errors}", flush=True)

    memory = None
    row = rows.get("gateway-cache/minio")
    if not args.no_memory and row and "10MB" in names:
        # Fill the cache past its 64 MiB with 1 MB objects, then 256 concurrent 10 MB downloads.
        for _ in range(80):
            name, data = random_object(1_000_000)
            stores["minio"].put(name, data)
            fetch(row, name, data)
        cache_bytes = metric(row.gateway.admin_port, "cache_bytes")
        run = measure(row, "10MB", 256, 3 * args.duration, done_lua, row.url(names["10MB"]))
        memory = {"cache_bytes": cache_bytes, "peak_rss_kib": run["peak_rss_kib"], "requests": run["requests"],
                  "errors": run["errors"] + run["non2xx"], "concurrency": 256, "size": "10MB"}
        print(f"memory: cache holds {cache_bytes / 2**20:.1f} MiB; 256 x 10 MB downloads: peak RSS "
              f"{run['peak_rss_kib'] / 1024:.1f} MiB, errors {memory['errors']}", flush=True)

    ready = start_to_ready(args.gateway, workdir, args.ready_runs)
    stop_children()

    def version(command, stream="stdout"):
        try:
            out = subprocess.run(command, capture_output=True, text=True)
            return (getattr(out, stream).strip().splitlines() or ["?"])[0]
        except OSError:
            return None

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        "versions": {
            "gateway": version([args.gateway, "--version"]),
            "minio": version([args.minio, "--version"]) if args.minio else None,
            "garage": version([args.garage, "--version"]) if args.garage else None,
            "nginx": version(["nginx", "-v"], "stderr"),
            "njs": version(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-http-js"]),
            "wrk": version(["wrk", "-v"]),
        },
        "settings": {"rounds": args.rounds, "duration_s": args.duration, "sizes": sizes, "concurrency": levels,
                     "hotset": args.hotset, "hotset_concurrency": hot_levels, "rows": list(rows)},
        "start_to_ready_ms": ready,
        "runs": results,
        "herd": herds,
        "memory": memory,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_children()
