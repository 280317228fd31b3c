#!/usr/bin/env bash
# Builds imgproxy (cgo, against Debian's libvips 8.14) into $IG_CACHE/imgproxy/<version>, once;
# prints the binary's path. Used as an anchor by bench/processing.sh.
#
# Version: $IMGPROXY_VERSION, v3.31.4 by default (the newest v3 release); v4.0.12, the current
# v4 release (module github.com/imgproxy/imgproxy/v4, tag commit ed78652c4a5d), builds the same
# way. Both compile against libvips 8.14: imgproxy has no libvips version gate, only `#if`
# branches for 8.15+ behaviour (vips/vips.c).
#
# Source: the Go module proxy refuses this module (`go list -m -versions
# github.com/imgproxy/imgproxy/v3` and every `@vX.Y.Z` answer "403 Forbidden: This module version
# is not available"), so `go install module@version` cannot work here. The script builds from a
# source tarball instead: $IMGPROXY_SRC (a tarball or a directory of the v3.31.4 tree), else
# $IG_CACHE/imgproxy/imgproxy-v3.31.4-src.tar.gz, made once with
#   git -C <a clone of github.com/imgproxy/imgproxy> archive --format=tar.gz \
#     --prefix=imgproxy-v3.31.4/ -o "$IG_CACHE/imgproxy/imgproxy-v3.31.4-src.tar.gz" v3.31.4
# (tag v3.31.4 = commit 8b0aa78279f191081054ba709b39f317f66ace78). Its dependencies come from the
# Go module proxy as usual. If the proxy ever serves the module, that is tried first.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VERSION="${IMGPROXY_VERSION:-v3.31.4}"
major="${VERSION#v}" && major="${major%%.*}"
MODULE="github.com/imgproxy/imgproxy/v$major"
OUT="$CACHE/imgproxy/$VERSION"
BIN="$OUT/imgproxy"

if [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -qx "${VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

bash "$(dirname "$0")/apt-ensure.sh" libvips-dev pkg-config gcc libc6-dev
go_env install-imgproxy
export CGO_ENABLED=1
mkdir -p "$OUT"
work="$(mktemp -d "$CACHE/imgproxy/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

src="${IMGPROXY_SRC:-$CACHE/imgproxy/imgproxy-$VERSION-src.tar.gz}"
if go mod download -json "$MODULE@$VERSION" >"$work/mod.json" 2>/dev/null; then
  dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' "$work/mod.json")"
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
elif [ -d "$src" ]; then
  cp -r "$src" "$work/src"
elif [ -f "$src" ]; then
  mkdir "$work/src" && tar -xzf "$src" -C "$work/src" --strip-components=1
else
  cat >&2 <<EOF
install-imgproxy: no imgproxy $VERSION source. The Go module proxy refuses $MODULE
("403 Forbidden: This module version is not available"), so it cannot be fetched by module path.
Put a source tarball of tag $VERSION at $src (see the header of this script), or point
IMGPROXY_SRC at one (or at an unpacked tree), and run again.
EOF
  exit 1
fi
grep -q "^module $MODULE\$" "$work/src/go.mod" \
  || { echo "install-imgproxy: $src is not $MODULE" >&2; exit 1; }
grep -q "\"${VERSION#v}\"" "$work/src/version/version.go" \
  || { echo "install-imgproxy: $src is not imgproxy $VERSION" >&2; exit 1; }

echo "building imgproxy $VERSION against libvips $(pkg-config --modversion vips) into $OUT" \
  "(once; about 4 minutes on 2 cores with an empty Go cache)" >&2
# The main package: the tree's root in v3, ./cli in v4.
main=.
[ -f "$work/src/cli/main.go" ] && main=./cli
(cd "$work/src" && go build -ldflags "-s -w" -o "$BIN.tmp" "$main") >&2
mv "$BIN.tmp" "$BIN"
"$BIN" version >/dev/null
echo "$BIN"
