#!/usr/bin/env bash
# Licences, bans and sources of every dependency (cargo-deny, crates.io, built once into
# $IG_CACHE/cargo-deny; the rules are in deny.toml). Advisories are left out: the RustSec
# database lives on GitHub, which these machines cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(bash scripts/install-cargo-tool.sh cargo-deny 0.20.2)"
"$bin/cargo-deny" --log-level error --locked check licenses bans sources
echo "dependencies: licences, bans and sources as deny.toml allows"
