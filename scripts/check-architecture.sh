#!/usr/bin/env bash
# The architecture of src/, checked in the test command: cargo-modules (crates.io, built once
# into $IG_CACHE/cargo-modules, ~5 minutes on 2 cores) reads the library's module graph with
# rust-analyzer; scripts/check-architecture.py fails on an import cycle between modules or an
# import that points up or sideways between layers.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(bash scripts/install-cargo-tool.sh cargo-modules 0.27.0)"
graph="$(mktemp)"
trap 'rm -f "$graph"' EXIT
# Modules only: every `use` of a function, type or trait becomes an edge between two modules.
PATH="$bin:$PATH" cargo modules dependencies --lib --layout dot \
  --no-externs --no-sysroot --no-fns --no-traits --no-types >"$graph"
python3 scripts/check-architecture.py "$graph"
