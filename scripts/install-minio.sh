#!/usr/bin/env bash
# Builds the MinIO server and its client `mc` (the tests manage users with it) from their Go
# modules, one pinned commit each, CGO off, into $IG_CACHE/minio once; prints the server's path.
# MinIO publishes no semver tags, so the module proxy serves both by pseudo-version.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
MINIO=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
MC=github.com/minio/mc@v0.0.0-20250313080218-cf909e1063a9
OUT="$CACHE/minio"
if [ "$(cat "$OUT/VERSION" 2>/dev/null)" != "$MINIO $MC" ] || [ ! -x "$OUT/minio" ] || [ ! -x "$OUT/mc" ]; then
  go_env install-minio
  echo "building $MINIO and $MC into $OUT (once; about 8 minutes on 2 cores)" >&2
  rm -rf "$OUT.tmp"
  # One module per `go install`; the second reuses most of the first's build cache.
  GOBIN="$OUT.tmp" go install -ldflags "-s -w" "$MINIO" >&2
  GOBIN="$OUT.tmp" go install -ldflags "-s -w" "$MC" >&2
  echo "$MINIO $MC" > "$OUT.tmp/VERSION"
  rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
fi
echo "$OUT/minio"
