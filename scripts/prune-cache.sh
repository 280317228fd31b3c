#!/usr/bin/env bash
# Keeps the build cache from filling the disk (a full disk fails builds, and MinIO answers 507).
# Cargo never deletes old artifacts: each clone path, feature set or dependency bump leaves
# another copy of the test binaries behind. This removes incremental state (the test command
# builds without it), and, when less than IG_MIN_FREE_GB (default 25) is free, the dev build
# folders themselves: the next build starts from scratch (about 10 minutes on 2 cores) rather
# than failing half-way. Idempotent; prints what it removed.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
TARGET="${CARGO_TARGET_DIR:-$CACHE/target}"
MIN_FREE_GB="${IG_MIN_FREE_GB:-25}"

free_gb() { df -P -BG "$CACHE" 2>/dev/null | awk 'NR==2 { sub("G", "", $4); print $4 }'; }

mkdir -p "$CACHE"
for dir in "$TARGET"/debug/incremental "$CACHE"/fuzz-target-dev/*/debug/incremental "$CACHE"/fuzz-target-dev/debug/incremental; do
  if [ -d "$dir" ]; then
    [ -z "$(ls -A "$dir")" ] || echo "prune-cache: removing $dir ($(du -sh "$dir" | cut -f1))" >&2
    rm -rf "$dir"
  fi
done
for dir in "$CACHE/fuzz-target-dev" "$TARGET/debug"; do
  [ "$(free_gb)" -lt "$MIN_FREE_GB" ] || break
  if [ -d "$dir" ]; then
    echo "prune-cache: less than ${MIN_FREE_GB} GB free; removing $dir ($(du -sh "$dir" | cut -f1))" >&2
    rm -rf "$dir"
  fi
done
echo "prune-cache: $(free_gb) GB free" >&2
