#!/usr/bin/env bash
# The load benchmark of docs/benchmarks.md, end to end (about 12 minutes on 2 cores, warm):
# installs wrk and nginx (Debian), Garage (crates.io, cached) and matplotlib (PyPI, cached),
# builds the gateway in release, runs bench/load.py, then writes bench/results/ (JSON, the
# tables in markdown, the chart). Arguments go to load.py (e.g. --rounds 1 --sizes 50KB).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get install -y --no-install-recommends wrk nginx-light >/dev/null
fi
garage="$(bash scripts/install-garage.sh)"
venv="$IG_CACHE/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib==3.10.*'
fi
cargo build --release --locked --bin image-gateway
mkdir -p bench/results
python3 bench/load.py --gateway "$CARGO_TARGET_DIR/release/image-gateway" --garage "$garage" \
  --out bench/results/load.json "$@"
"$venv/bin/python" bench/report.py bench/results/load.json bench/results/load.md docs/benchmarks.png
