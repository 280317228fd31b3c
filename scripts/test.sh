#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs what the tests need (Garage and
# schemathesis, once, into a cache outside the clone), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
IG_GARAGE_BIN="$(bash scripts/install-garage.sh)"
export IG_GARAGE_BIN
echo "garage: $("$IG_GARAGE_BIN" --version 2>/dev/null | head -1)"
# The API description against the running server (schemathesis, from PyPI, cached).
bash scripts/schemathesis.sh
# Unit tests and the integration test binary; their summary lines close the run.
cargo test --locked --all-targets "$@"
