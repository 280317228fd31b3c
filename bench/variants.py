#!/usr/bin/env python3
"""Variant benchmark: serving variants once rendered, against NGINX's nginx-s3-gateway with its
cache, on the same MinIO.

Sources: the mate-backgrounds JPEGs of 1000-4096 px (Debian), stored as <md5>.jpg. Variants:
each source at the first --widths of the gateway's default sides, WebP quality 75, fit inside a
square of that side: --widths x sources variants (300 by default).

  hotset   every variant fetched once, then requested with Zipf(1.0) popularity by wrk at
           --concurrency, --rounds rounds of --duration seconds, the two rows interleaved:
             gateway           GET /v1/image/download/<id>?w=…&h=…&fit=inside&format=webp&q=75,
                               variants.cache_max_bytes at its default (64 MiB)
             s3-gateway-cache  nginx-s3-gateway with upstream's proxy_cache as shipped (bench/
                               s3_gateway.py) and its access_log on (the gateway logs every
                               request too), serving the same variants' bytes, put in the
                               bucket as objects of their own (what an operator of a plain
                               S3 front would have to render and store beforehand)
  herd     a variant nobody asked for yet, 256 connections opened first and sending their GET
           at once: errors, time to the last byte, renders (image_variants_served_total).
  restart  with variants.store = true: every variant fetched once from one gateway process,
           which then stops; a new process on the same bucket serves them all: how many it
           rendered (0 wanted) and how many it read from storage.

Run through bench/variants.sh (installs MinIO, nginx-s3-gateway and wrk, builds the gateway).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

from s3_gateway import NginxS3Gateway
from servers import (
    API_KEY,
    MATE_DIR,
    Gateway,
    Minio,
    cpu_seconds,
    herd,
    http_get,
    lua_file,
    mate_photos,
    shipped_env,
    stop_children,
    wrk,
)

# The gateway's default variants.sides, from the smallest: the widths of the hot set.
SIDES = [16, 32, 48, 64, 96, 128, 160, 200, 240, 320, 400, 480, 560, 640, 720, 800, 960, 1080, 1200, 1440]
QUALITY = 75
HEADERS = [f"X-API-Key: {API_KEY}"]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def sources(minio, min_width=1000, max_width=4096):
    """Puts the mate-backgrounds JPEGs of min..max px wide into the bucket; their names."""
    names = []
    for _, data, _ in mate_photos(min_width, max_width):
        name = hashlib.md5(data).hexdigest() + ".jpg"
        if name not in names:
            minio.put(name, data)
            names.append(name)
    if not names:
        raise SystemExit(f"no JPEG {min_width}-{max_width} px wide under {MATE_DIR}")
    return names


def variant_path(name, side):
    return f"/v1/image/download/{name}?w={side}&h={side}&fit=inside&format=webp&q={QUALITY}"


def get(port, path, headers=()):
    status, body, _ = http_get(port, path, headers=dict(h.split(": ", 1) for h in headers), timeout=120)
    if status != 200:
        raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
    return body


def served(gateway):
    """image_variants_served_total by tier, summed over formats."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    tiers = {}
    for line in text.splitlines():
        if line.startswith("image_variants_served_total{"):
            tier = line.split('tier="', 1)[1].split('"', 1)[0]
            tiers[tier] = tiers.get(tier, 0) + int(float(line.rsplit(" ", 1)[1]))
    return tiers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True, help="the release binary")
    parser.add_argument("--minio", required=True, help="the minio binary (mc beside it)")
    parser.add_argument("--s3-gateway", help="the nginx-s3-gateway tree (without it, no s3-gateway-cache row)")
    parser.add_argument("--widths", type=int, default=20, help="sides per source (of the 20 smallest)")
    parser.add_argument("--sources", type=int, help="the first N sources only (default: all)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="bench/results/variants.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    workdir = tempfile.mkdtemp(prefix="ig-variants-")
    os.chmod(workdir, 0o755)  # nginx's workers (user nobody) reach their cache below it
    extra = dict(item.split("=", 1) for item in args.gateway_env)
    try:
        minio = Minio(args.minio, workdir)
        names = sources(minio)[:args.sources]
        hot = [(name, side) for side in SIDES[:args.widths] for name in names]
        log(f"{len(names)} sources, {len(hot)} variants")
        env = {**shipped_env(), **minio.gateway_env(), "IMAGE_GATEWAY_VARIANTS__STORE": "true", **extra}

        # restart: render and store every variant in one process, serve them from another.
        first = Gateway(args.gateway, workdir, "gateway-first", env)
        bodies = {}
        started = time.monotonic()
        for name, side in hot:
            bodies[(name, side)] = get(first.port, variant_path(name, side), HEADERS)
        render_s = time.monotonic() - started
        first_tiers = served(first)
        first.stop()
        gateway = Gateway(args.gateway, workdir, "gateway", env)
        started = time.monotonic()
        for (name, side), body in bodies.items():
            if get(gateway.port, variant_path(name, side), HEADERS) != body:
                raise SystemExit(f"{name} w={side}: the restarted gateway served other bytes")
        restart = {"variants": len(hot), "first_process": first_tiers, "first_s": round(render_s, 2),
                   "second_process": served(gateway), "second_s": round(time.monotonic() - started, 2)}
        log(f"restart: {restart}")

        # hotset: the same bytes as objects behind nginx-s3-gateway's cache.
        for (name, side), body in bodies.items() if args.s3_gateway else ():
            minio.put(f"copies/{name[:-4]}_w{side}.webp", body)
        # Each logs every request, as deployed and as bench/load.py runs them: the gateway its JSON
        # access line, nginx its access_log (off, a logging server would be compared with a silent one).
        rows = {"gateway": (gateway.port, HEADERS, [variant_path(n, s) for n, s in hot], gateway.pids)}
        nginx = None
        if args.s3_gateway:
            nginx = NginxS3Gateway(args.s3_gateway, workdir, minio.s3_port, minio.bucket, minio.access_key,
                                   minio.secret_key, cache=True, access_log=True)
            rows["s3-gateway-cache"] = (nginx.port, [], [f"/copies/{n[:-4]}_w{s}.webp" for n, s in hot], nginx.pids)
        for port, headers, paths, _ in rows.values():
            for path in paths:  # every variant once: both caches hold the hot set
                get(port, path, headers)
        luas = {row: lua_file(workdir, f"zipf-{row}", paths) for row, (_, _, paths, _) in rows.items()}
        runs = {row: [] for row in rows}
        for _ in range(args.rounds):
            for row, (port, headers, _, pids) in rows.items():
                cpu_before = cpu_seconds(pids())
                run = wrk(f"http://127.0.0.1:{port}", headers, args.concurrency, args.duration, luas[row])
                run["cpu_us_per_request"] = (cpu_seconds(pids()) - cpu_before) * 1e6 / max(run["requests"], 1)
                runs[row].append(run)
                log(f"hotset {row:<17} {run['rps']:9.0f} req/s  p50 {run['p50_us'] / 1000:6.2f} ms  "
                    f"p99 {run['p99_us'] / 1000:6.2f} ms  errors {run['errors'] + run['non2xx']}")
        hotset = {row: {
            "rps": round(statistics.median(r["rps"] for r in rs)),
            "p50_ms": round(statistics.median(r["p50_us"] for r in rs) / 1000, 2),
            "p99_ms": round(statistics.median(r["p99_us"] for r in rs) / 1000, 2),
            "cpu_us_per_request": round(statistics.median(r["cpu_us_per_request"] for r in rs), 1),
            "errors": sum(r["errors"] + r["non2xx"] for r in rs),
        } for row, rs in runs.items()}
        if nginx:
            hotset["ratio_rps"] = round(hotset["gateway"]["rps"] / hotset["s3-gateway-cache"]["rps"], 2)

        # herd: one variant nobody has asked for.
        before = served(gateway)
        results, released = herd(gateway.port, variant_path(names[0], 1920), HEADERS, timeout=120)
        bodies = {body for status, body, _ in results if status == 200}
        errors = sum(1 for status, _, _ in results if status != 200) + (len(bodies) != 1)
        seconds = max(at for _, _, at in results) - released
        after = served(gateway)
        herd_result = {"clients": 256, "errors": errors, "last_byte_s": round(seconds, 3),
                       "tiers": {t: after.get(t, 0) - before.get(t, 0) for t in after}}
        log(f"herd: {herd_result}")
        if nginx:
            nginx.stop()

        report = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "kernel": platform.release(), "sources": len(names), "variants": len(hot),
            "concurrency": args.concurrency, "duration_s": args.duration, "rounds": args.rounds,
            "gateway_env": extra, "restart": restart, "hotset": hotset, "herd": herd_result,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        log(f"wrote {args.out}")
    finally:
        stop_children()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
