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
  # The tests send Garage a few objects of at most tens of megabytes: its ~500 crates compile
  # unoptimised (the longest single step of a cold run; at opt-level 1 it took ~20 CPU-minutes),
  # except those that touch every byte of an object, optimised as in a release: the hashes and
  # checksums (Garage's blocks, SigV4, Content-MD5), zstd and LMDB.
  hot=(blake2 sha2 sha1 md-5 hmac crc-fast crc32fast xxhash-rust zstd-sys zstd-safe lmdb-master-sys)
  optimised=()
  for crate in "${hot[@]}"; do optimised+=(--config "profile.release.package.$crate.opt-level=3"); done
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_TARGET_DIR="$CACHE/garage-build" cargo install --locked --root "$CACHE/garage" \
    "${optimised[@]}" "garage@$VERSION" --no-default-features --features bundled-libs,lmdb >&2
  rm -rf "$CACHE/garage-build"
fi
echo "$BIN"
