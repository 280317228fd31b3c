#!/usr/bin/env bash
# Installs a cargo tool from crates.io at an exact version into $IG_CACHE/NAME (once; again only
# when the version changes) and prints the directory holding its binaries.
#   bash scripts/install-cargo-tool.sh cargo-deny 0.20.2
set -euo pipefail
name="$1" version="$2"
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
root="$IG_CACHE/$name"
if ! "$root/bin/$name" --version 2>/dev/null | grep -qF "$version"; then
  echo "installing $name $version into $root (once)" >&2
  cargo install --quiet --locked --version "$version" --root "$root" "$name" >&2
fi
echo "$root/bin"
