#!/usr/bin/env bash
# Installs a cargo tool from crates.io at an exact version into $IG_CACHE/NAME (once; again only
# when the version changes) and prints the directory holding its binaries.
#   bash scripts/install-cargo-tool.sh cargo-deny 0.20.2
# The tools run once per test command, for seconds: they are built at opt-level 1, without LTO,
# in 16 codegen units (cargo-deny's own profile asks for fat LTO in one unit), which roughly
# halves their cold build on 2 cores.
set -euo pipefail
name="$1" version="$2"
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
root="$IG_CACHE/$name"
if ! "$root/bin/$name" --version 2>/dev/null | grep -qF "$version"; then
  echo "installing $name $version into $root (once)" >&2
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_TARGET_DIR="$root-build" \
    cargo install --quiet --locked --version "$version" --root "$root" "$name" >&2
  rm -rf "$root-build"
fi
echo "$root/bin"
