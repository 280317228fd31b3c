#!/usr/bin/env python3
"""Retention at scale: `image-gateway retention` over many objects (default 1,000,000) on the
fs backend and on MinIO, reporting objects listed per second (a dry run: one listing pass),
objects deleted per second, the process's CPU time and peak RSS (from wait4's rusage).

  fs     N empty files named like objects; half of them dated two days back (os.utime), so a
         run with --max-age 1d lists N and deletes N/2. With --before BIN, the same on a
         smaller folder (--before-objects) for that binary and this one: the O(n^2/page) listing
         it replaces (one full folder scan per page of 1000) against one walk.
  s3     N empty objects put into MinIO with `mc mirror` from such a folder; a dry run (lists N,
         deletes none), then a run with --max-age 1s after the objects are older than that
         (deletes all N, in DeleteObjects batches of 1000).

Empty objects: retention reads only names, sizes and dates, and a million 50 KB files would
take 50 GB. Run through bench/retention.sh, which builds the gateway and MinIO:
  bash bench/retention.sh --objects 1000000
"""

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

from servers import Minio, stop_children


def make_folder(root, count, old_share):
    """`count` empty files named like objects, `old_share` of them dated two days back."""
    os.makedirs(root, exist_ok=True)
    old = time.time() - 2 * 86400
    old_every = round(1 / old_share) if old_share else 0
    for i in range(count):
        path = os.path.join(root, secrets.token_hex(16) + ".png")
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        if old_every and i % old_every == 0:
            os.utime(path, (old, old))


def retention(binary, env, *args):
    """Runs `binary retention args`; answers its summary, wall time and rusage."""
    started = time.monotonic()
    proc = subprocess.Popen([binary, "retention", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"retention {' '.join(args)} failed ({status}):\n{output[-3000:]}")
    match = re.search(r"retention: scanned=(\d+) foreign=(\d+) expired=(\d+) deleted=(\d+) bytes_freed=\d+ "
                      r"errors=(\d+)", output)
    if not match:
        raise SystemExit(f"no retention summary in:\n{output[-3000:]}")
    scanned, foreign, expired, deleted, errors = map(int, match.groups())
    return {
        "args": list(args), "scanned": scanned, "foreign": foreign, "expired": expired, "deleted": deleted,
        "errors": errors, "wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_kib": usage.ru_maxrss, "objects_per_s": round(scanned / wall),
    }


def log(row, label):
    print(f"{label:<34} scanned {row['scanned']:>8} deleted {row['deleted']:>8} in {row['wall_s']:8.2f} s "
          f"({row['objects_per_s']:>7}/s), CPU {row['cpu_s']:7.2f} s, peak RSS {row['peak_rss_kib'] / 1024:6.1f} MiB, "
          f"errors {row['errors']}", flush=True)


def base_env():
    env = dict(os.environ, IMAGE_GATEWAY_LOG__LEVEL="warn")
    env.pop("RUST_LOG", None)
    return env


def fs_runs(binary, workdir, count, label):
    root = os.path.join(workdir, f"fs-{label}")
    started = time.monotonic()
    make_folder(root, count, 0.5)
    print(f"{count} files in {time.monotonic() - started:.0f} s", flush=True)
    env = dict(base_env(), IMAGE_GATEWAY_STORAGE__BACKEND="fs", IMAGE_GATEWAY_STORAGE__FS__ROOT=root)
    rows = {}
    rows["dry_run"] = retention(binary, env, "--max-age", "1d", "--dry-run")
    log(rows["dry_run"], f"fs {label}: dry run")
    rows["delete"] = retention(binary, env, "--max-age", "1d")
    log(rows["delete"], f"fs {label}: delete half")
    left = len(os.listdir(root))
    if rows["dry_run"]["scanned"] != count or rows["delete"]["deleted"] != count - left:
        raise SystemExit(f"fs {label}: listed {rows['dry_run']['scanned']} of {count}, "
                         f"deleted {rows['delete']['deleted']}, {left} files left")
    shutil.rmtree(root)
    return rows


def s3_runs(binary, minio_bin, workdir, count):
    source = os.path.join(workdir, "s3-source")
    make_folder(source, count, 0)
    os.makedirs(os.path.join(workdir, "minio"))
    minio = Minio(minio_bin, os.path.join(workdir, "minio"))
    started = time.monotonic()
    minio.run_mc("mirror", source, f"local/{minio.bucket}")
    put_s = time.monotonic() - started
    print(f"{count} objects put into MinIO in {put_s:.0f} s", flush=True)
    shutil.rmtree(source)
    env = dict(base_env(), **minio.gateway_env(), IMAGE_GATEWAY_CACHE__ENABLED="false")
    rows = {"put_s": round(put_s, 1)}
    rows["dry_run"] = retention(binary, env, "--max-age", "1d", "--dry-run")
    log(rows["dry_run"], "s3 (MinIO): dry run")
    time.sleep(1.5)
    rows["delete"] = retention(binary, env, "--max-age", "1s")
    log(rows["delete"], "s3 (MinIO): delete all")
    if rows["dry_run"]["scanned"] != count or rows["delete"]["deleted"] != count:
        raise SystemExit(f"s3: listed {rows['dry_run']['scanned']} of {count}, deleted {rows['delete']['deleted']}")
    minio.stop()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True, help="the release binary")
    parser.add_argument("--minio", help="the minio binary, mc beside it (for the s3 backend)")
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--before", help="an earlier release binary to compare on fs")
    parser.add_argument("--before-objects", type=int, default=100_000)
    parser.add_argument("--backends", default="fs,s3")
    parser.add_argument("--out", required=True, help="JSON results file")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "s3" in backends and not args.minio:
        parser.error("the s3 backend needs --minio")
    workdir = tempfile.mkdtemp(prefix="ig-retention-", dir=os.environ.get("IG_BENCH_DIR", "/var/tmp"))
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        "gateway": subprocess.run([args.gateway, "--version"], capture_output=True, text=True).stdout.strip(),
        "objects": args.objects,
    }
    try:
        if args.before and "fs" in backends:
            report["fs_before"] = {
                "objects": args.before_objects,
                "before": fs_runs(args.before, workdir, args.before_objects, "before"),
                "after": fs_runs(args.gateway, workdir, args.before_objects, "after"),
            }
        if "fs" in backends:
            report["fs"] = fs_runs(args.gateway, workdir, args.objects, "all")
        if "s3" in backends:
            report["s3"] = s3_runs(args.gateway, args.minio, workdir, args.objects)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_children()
