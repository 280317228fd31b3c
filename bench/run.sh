#!/usr/bin/env bash
# The load benchmark of docs/benchmarks.md, end to end (about 30 minutes on 2 cores, warm):
# installs wrk and nginx (Debian), MinIO and Garage (Go proxy / crates.io, cached), NGINX's
# nginx-s3-gateway (scripts/install-nginx-s3-gateway.sh) and matplotlib (PyPI, cached), builds
# the gateway in release, runs bench/load.py, then writes bench/results/ (JSON, the tables in
# markdown, the chart). Arguments go to load.py (e.g. --rounds 1 --sizes 50KB --stores minio,garage).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
bash scripts/apt-ensure.sh wrk nginx
garage="$(bash scripts/install-garage.sh)"
minio="$(bash scripts/install-minio.sh)"
s3_gateway="$(bash scripts/install-nginx-s3-gateway.sh)"
venv="$IG_CACHE/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib==3.10.*'
fi
cargo build --release --locked --bin image-gateway
mkdir -p bench/results
out="${IG_BENCH_OUT:-bench/results/load}"
python3 bench/load.py --gateway "$CARGO_TARGET_DIR/release/image-gateway" --minio "$minio" --garage "$garage" \
  --s3-gateway "$s3_gateway" --out "$out.json" "$@"
"$venv/bin/python" bench/report.py "$out.json" "$out.md" "${IG_BENCH_CHART:-docs/benchmarks.png}"
