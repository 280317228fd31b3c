#!/usr/bin/env bash
# Installs the Garage S3 server from crates.io into the cache, once; prints the binary's path.
# Idempotent: reuses $IG_CACHE/garage when the right version is already there.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VERSION=2.5.0
BIN="$CACHE/garage/bin/garage"
if [ ! -x "$BIN" ] || ! "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  mkdir -p "$CACHE"
  echo "installing garage $VERSION into $CACHE/garage (about 10 minutes on 2 cores, once)" >&2
  # opt-level 1: the tests send Garage a few small objects, and its ~400 crates compile in
  # much less time than at the release default (3); the longest single step of a cold run.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_TARGET_DIR="$CACHE/garage-build" cargo install --locked --root "$CACHE/garage" \
    "garage@$VERSION" --no-default-features --features bundled-libs,lmdb >&2
  rm -rf "$CACHE/garage-build"
fi
echo "$BIN"
