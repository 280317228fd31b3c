#!/usr/bin/env bash
# Installs KEDA (the node tests' queue-depth autoscaling, tests/node/test_autoscaling.py) once into
# $IG_CACHE/keda and prints that folder: the operator (ScaledObjects, its scalers, the gRPC
# metrics service) and the metrics adapter (the external metrics API the HPA reads), built from
# the Go module, and its CRDs. prometheus-adapter, the other way to the custom metrics API, is
# not served by the module proxy (403 for sigs.k8s.io/prometheus-adapter). 2.21.1 needs a newer
# Go than the approved toolchain.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
KEDA_VERSION=v2.21.0
STAMP="keda $KEDA_VERSION (scalers: cpu, memory, prometheus, external)"
OUT="$CACHE/keda"
if [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$STAMP" ] && [ -f "$OUT/crds/VERSION" ]; then
  echo "$OUT"
  exit 0
fi
go_env install-keda
src="$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
if [ "$(cat "$OUT/VERSION" 2>/dev/null)" != "$STAMP" ]; then
  echo "building KEDA $KEDA_VERSION (operator and metrics adapter) into $OUT (once; ~2 minutes on 2 cores)" >&2
  # Its go.mod replaces a module, which `go install module@version` refuses: built from a
  # writable copy of the module's source.
  rm -rf "$OUT.tmp" "$OUT.src" && mkdir -p "$OUT.tmp" && cp -r "$src" "$OUT.src" && chmod -R u+w "$OUT.src"
  # Only the scalers the chart uses: half the packages, half the build (scripts/trim-go-tools.py).
  python3 "$(dirname "$0")/trim-go-tools.py" keda "$OUT.src"
  ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
  (cd "$OUT.src" && go build -ldflags "$ldflags" -o "$OUT.tmp/keda-operator" ./cmd/operator \
    && go build -ldflags "$ldflags" -o "$OUT.tmp/keda-adapter" ./cmd/adapter) >&2
  rm -rf "$OUT.src"
  echo "$STAMP" > "$OUT.tmp/VERSION"
  rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
fi
# Every CRD the operator watches (its controllers do not start without them), eventing's too.
rm -rf "$OUT/crds" && mkdir -p "$OUT/crds"
cp "$src"/config/crd/bases/*.yaml "$OUT/crds/"
echo "keda $KEDA_VERSION" > "$OUT/crds/VERSION"
echo "$OUT"
