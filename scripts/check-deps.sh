#!/usr/bin/env bash
# Licences, bans and sources of every dependency (cargo-deny, crates.io, built once into
# $IG_CACHE/cargo-deny; the rules are in deny.toml). Advisories are left out: the RustSec
# database lives on GitHub, which these machines cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
version=0.20.2
root="$IG_CACHE/cargo-deny"
if ! "$root/bin/cargo-deny" --version 2>/dev/null | grep -qF "$version"; then
  echo "installing cargo-deny $version into $root (once)" >&2
  cargo install --quiet --locked --version "$version" --root "$root" cargo-deny
fi
"$root/bin/cargo-deny" --log-level error --locked check licenses bans sources
echo "dependencies: licences, bans and sources as deny.toml allows"
