#!/usr/bin/env bash
# Mutation testing of the pure modules' unit tests (cargo-mutants from crates.io, installed into
# the cache once): every viable mutant of these files must be caught by `cargo test --lib`, at
# least MIN_CAUGHT percent of them (95 by default). It takes long (733 mutants, frames.rs alone
# has 269), so it is a script of its own, not part of the test command.
# `bash scripts/mutants.sh src/config/units.rs` runs one file; MUTANTS_SHARD=1/4 runs the second
# quarter of the list in cargo-mutants' order (consecutive, so a quarter is a few whole files);
# MUTANTS_JOBS (2 by default) mutants are built and tested at once. MUTANTS_SKIP="processing::
# storage::" leaves out the unit tests whose names hold one of those words (faster; it can only
# lower the score, so a score measured with it holds); MUTANTS_EXCLUDE_RE leaves out the mutants
# whose names match (to finish a run that was stopped), MUTANTS_RE keeps only those that match
# (to re-run the functions a pin was written for).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VERSION=27.1.0
BIN="$CACHE/cargo-mutants/bin/cargo-mutants"
if [ ! -x "$BIN" ] || ! "$BIN" mutants --version 2>/dev/null | grep -q "$VERSION"; then
  echo "installing cargo-mutants $VERSION into $CACHE/cargo-mutants (about 1.5 minutes, once)" >&2
  cargo install --locked --root "$CACHE/cargo-mutants" "cargo-mutants@$VERSION" >&2
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(src/object_name.rs src/api/download/range.rs src/api/download/conditional.rs src/api/download/variant.rs
         src/auth/signing.rs src/auth/keys.rs
         src/config/api_keys.rs src/content/sniff.rs src/content/frames.rs src/content/svg.rs src/config/units.rs src/http/client_ip.rs)
fi
out="$(mktemp -d)"
args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
# cargo-mutants builds a copy of the tree with a target folder of its own. `--lib` goes to every
# cargo call (-C): without it each mutant's build also compiled the integration tests, the
# binary and the benchmarks (40 s a mutant instead of about 11).
[ -z "${MUTANTS_SHARD:-}" ] || args+=(--shard "$MUTANTS_SHARD")
[ -z "${MUTANTS_EXCLUDE_RE:-}" ] || args+=(--exclude-re "$MUTANTS_EXCLUDE_RE")
[ -z "${MUTANTS_RE:-}" ] || args+=(--re "$MUTANTS_RE")
skip=()
for s in ${MUTANTS_SKIP:-}; do skip+=(--skip "$s"); done
echo "output: $out"
env -u CARGO_TARGET_DIR "$BIN" mutants "${args[@]}" --jobs "${MUTANTS_JOBS:-2}" --timeout 120 --output "$out" -C --lib \
  -- -- "${skip[@]}" || true
m="$out/mutants.out"
caught=$(wc -l < "$m/caught.txt"); missed=$(wc -l < "$m/missed.txt"); timeouts=$(wc -l < "$m/timeout.txt")
viable=$((caught + missed + timeouts))
[ "$viable" -gt 0 ] || { echo "no viable mutant was tested; see $m" >&2; exit 1; }
percent=$((100 * (caught + timeouts) / viable))
echo "mutants: $caught caught, $timeouts timed out (counted as caught), $missed missed of $viable viable: $percent %"
[ "$missed" -eq 0 ] || { echo "missed:"; cat "$m/missed.txt"; }
[ "$percent" -ge "${MIN_CAUGHT:-95}" ] || { echo "below ${MIN_CAUGHT:-95} %" >&2; exit 1; }
