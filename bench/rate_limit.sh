#!/usr/bin/env bash
# The rate-limit benchmark (bench/rate_limit.py): a 1 KB download with limits off, in memory
# and in Redis, at 64 connections. Installs wrk (Debian) and Redis (scripts/install-redis.sh),
# builds the gateway in release; arguments go to rate_limit.py (e.g. --rounds 1). About 4
# minutes at the defaults (3 rounds of 2 loads × 3 rows, 12 s each, plus start-ups).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
bash scripts/apt-ensure.sh wrk
redis="$(bash scripts/install-redis.sh)"
cargo build --release --locked --bin image-gateway
python3 bench/rate_limit.py --gateway "$CARGO_TARGET_DIR/release/image-gateway" --redis "$redis" "$@"
