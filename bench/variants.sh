#!/usr/bin/env bash
# The variant benchmark (bench/variants.py): rendered variants served from the gateway's caches
# against nginx-s3-gateway's proxy_cache on the same MinIO, a herd of first requests for one new
# variant, and a restart with the persistent tier. Installs wrk, nginx and mate-backgrounds
# (Debian), MinIO and nginx-s3-gateway (cached in $IG_CACHE), builds the gateway in release;
# arguments go to variants.py. Writes bench/results/variants.json. About 3 minutes (warm caches).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
bash scripts/apt-ensure.sh wrk nginx mate-backgrounds
minio="$(bash scripts/install-minio.sh)"
s3_gateway="$(bash scripts/install-nginx-s3-gateway.sh)"
# libjpeg-turbo and libaom are built from source: cmake and NASM, as in the Dockerfile.
bash scripts/apt-ensure.sh nasm cmake g++
cargo build --release --locked --features native-codecs --bin image-gateway
python3 bench/variants.py --gateway "$CARGO_TARGET_DIR/release/image-gateway" --minio "$minio" \
  --s3-gateway "$s3_gateway" "$@"
