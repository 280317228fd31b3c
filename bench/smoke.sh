#!/usr/bin/env bash
# A tiny run of every benchmark (issue 27: bench/ is code too), so that none rots between the
# full runs, which take minutes to an hour and happen rarely: a benchmark broken by a change to
# the gateway, to bench/servers.py or to the benchmark itself fails here, in the test command,
# instead of at the end of its next real run. Seconds each (one size, one concurrency, one
# round of 1 s), against the gateway binary given as $1 (default: the test command's debug
# build); the figures mean nothing (a debug build, a busy machine) and are thrown away with the
# temporary folder they go to, never bench/results/ nor docs/. What is asserted is that each
# benchmark exits 0 and writes every part of its JSON, answered without errors
# (bench/smoke_check.py).
#
# References: only what the test command has already installed or builds cheaply: MinIO
# ($IG_MINIO_BIN), Redis ($IG_REDIS_BIN) and Debian's nginx (`direct`, `nginx-proxy` and
# `nginx-static` rows). Not nginx-s3-gateway (a tarball made by hand, see
# scripts/install-nginx-s3-gateway.sh), and never imgproxy, thumbor or pyvips (source builds of
# many minutes): processing.py runs with --servers gateway only, variants.py without its
# s3-gateway-cache row, load.py without the s3-gateway rows. Not run: s3_gateway.py --self-test
# (it needs that tarball) and vips_server.py (pyvips).
#
# Needs IG_PYTHON (the test tools' Python: Pillow and numpy score processing.py's answers),
# IG_MINIO_BIN and IG_REDIS_BIN, as scripts/test.sh exports them. About 50 s on 2 cores (the
# debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
gateway="${1:-${CARGO_TARGET_DIR:-$IG_CACHE/target}/debug/image-gateway}"
python="${IG_PYTHON:?IG_PYTHON: the test tools Python (scripts/install-python-tools.sh)}"
minio="${IG_MINIO_BIN:?IG_MINIO_BIN: scripts/install-minio.sh}"
redis="${IG_REDIS_BIN:?IG_REDIS_BIN: scripts/install-redis.sh}"
[ -x "$gateway" ] || { echo "smoke: no gateway binary at $gateway" >&2; exit 1; }
bash scripts/apt-ensure.sh wrk nginx mate-backgrounds
out="$(mktemp -d)"
# nginx's workers (user nobody, when started as root) read load.py's files below it.
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT
# Every benchmark's scratch folder (tempfile) goes below $out too: a failed run's is removed
# with it, and a server left running is found by the files it holds there (below).
export TMPDIR="$out"
failed=()

# run NAME COMMAND...: its output to a log, shown only when it fails; then its JSON checked.
run() {
  local name="$1" started=$SECONDS
  shift
  if ! "$@" >"$out/$name.log" 2>&1; then
    echo "smoke: $name failed:" >&2
    tail -n 40 "$out/$name.log" >&2
    failed+=("$name")
    return 0
  fi
  if ! "$python" bench/smoke_check.py "$name" "$out/$name.json"; then
    tail -n 20 "$out/$name.log" >&2
    failed+=("$name")
  fi
  echo "  ($name: $((SECONDS - started)) s)"
}

# The gateway, cache off and on, against MinIO read directly and through nginx, and on fs
# against nginx serving the files; one 50 KB object and a 20-object hot set; the herd (MinIO
# counts the GETs that reach it); no memory run (it needs 10 MB objects and 256 connections).
run load python3 bench/load.py --gateway "$gateway" --minio "$minio" --stores minio \
  --configs gateway,gateway-cache,direct,nginx-proxy --fs gateway,nginx-static --sizes 50KB \
  --concurrency 8 --hotset 20 --hotset-concurrency 8 --rounds 1 --duration 1 --warmup 0 --ready-runs 3 \
  --no-memory --out "$out/load.json"
# report.py turns load.py's JSON into docs/benchmarks.md's tables (no chart: matplotlib is not
# among the test tools).
run_report() { python3 bench/report.py "$out/load.json" "$out/load.md" >/dev/null && grep -q 'gateway/fs' "$out/load.md"; }
if [ -f "$out/load.json" ]; then
  run_report || { echo "smoke: report.py failed on load.py's JSON" >&2; failed+=(report); }
fi
# The gateway only (see above), 2 photographs, c=2, and the download-under-load phase.
run processing "$python" bench/processing.py --servers gateway --gateway "$gateway" --max-width 2000 --images 2 \
  --concurrency 2 --duration 1 --warmup 0 --wait-idle 0 --retries 0 --download-duration 1 \
  --download-warmup 0 --out "$out/processing.json" --markdown "$out/processing.md"
# 2 photographs at the 2 smallest sides; shutdown.grace 0 s: the restart phase stops a gateway.
run variants python3 bench/variants.py --gateway "$gateway" --minio "$minio" --sources 2 --widths 2 \
  --concurrency 8 --rounds 1 --duration 1 --gateway-env IMAGE_GATEWAY_SHUTDOWN__GRACE=0s \
  --out "$out/variants.json"
run rate_limit python3 bench/rate_limit.py --gateway "$gateway" --redis "$redis" --rounds 1 --duration 1 \
  --warmup 0 --concurrency 8 --out "$out/rate_limit.json"
IG_BENCH_DIR="$out" run retention python3 bench/retention.py --gateway "$gateway" --minio "$minio" \
  --objects 200 --out "$out/retention.json"

# Every server a benchmark started must end with it (servers.stop_children): one still holding a
# file below $out was left behind (an nginx master killed without its workers was, once).
mapfile -t leaked < <(find /proc/[0-9]*/fd /proc/[0-9]*/cwd -maxdepth 1 -lname "$out/*" 2>/dev/null | cut -d/ -f3 | sort -u)
if [ "${#leaked[@]}" -gt 0 ]; then
  echo "smoke: processes left running by the benchmarks:" >&2
  ps -o pid,ppid,cmd -p "$(IFS=,; echo "${leaked[*]}")" >&2 || true
  kill "${leaked[@]}" 2>/dev/null || true
  failed+=(leftover-processes)
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "smoke: failed: ${failed[*]}" >&2
  exit 1
fi
echo "smoke: every benchmark ran and answered"
