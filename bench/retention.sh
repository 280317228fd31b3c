#!/usr/bin/env bash
# Retention at scale (docs/benchmarks.md): builds the gateway in release and MinIO (cached), runs
# bench/retention.py, writes bench/results/retention.json. Arguments go to retention.py
# (e.g. --objects 100000 --backends fs, or --before <an earlier release binary>).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
minio="$(bash scripts/install-minio.sh)"
cargo build --release --locked --bin image-gateway
mkdir -p bench/results
python3 bench/retention.py --gateway "$CARGO_TARGET_DIR/release/image-gateway" --minio "$minio" \
  --out bench/results/retention.json "$@"
