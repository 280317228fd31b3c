#!/usr/bin/env bash
# Builds the debug server the way the test command's cargo tests build it (native-codecs on,
# with the lib, bins and tests: `cargo test --no-run`) and prints the binary's path. One debug
# build for schemathesis, the chart checks and the tests: a plain `cargo build` resolves tokio
# without the features the dev-dependencies add (process, test-util), so it compiled tokio and
# everything above it (hyper, aws-sdk-s3, kube, …) a second time, minutes of a cold run.
set -euo pipefail
cd "$(dirname "$0")/.."
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
bash scripts/apt-ensure.sh nasm cmake g++
cargo test --locked --quiet --features native-codecs --lib --bins --tests --no-run >&2
echo "$CARGO_TARGET_DIR/debug/image-gateway"
