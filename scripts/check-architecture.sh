#!/usr/bin/env bash
# The architecture of src/, checked in the test command: scripts/module_graph.py reads the
# library's module graph from its source, scripts/check-architecture.py fails on an import cycle
# between modules or an import that points up or sideways between layers (after checking itself
# on a crate made for it). It replaced cargo-modules, whose rust-analyzer build took 12 of the
# cold run's CPU-minutes; on this tree both found the same edges, the reader more (code behind
# the libjpeg-turbo feature, paths inside macros) and none fewer outside the crate root.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check-architecture.py src
