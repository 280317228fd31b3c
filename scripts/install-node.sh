#!/usr/bin/env bash
# Installs what the node tests (tests/node/) run beside the Kubernetes binaries of
# install-kube.sh, once, into $IG_CACHE/node; prints that folder:
# - containerd, runc and the CNI plugins (bridge, host-local, loopback, portmap) from Debian;
# - CoreDNS from its Go module, at the release kubeadm pins for this Kubernetes minor;
# - Prometheus from its Go module with Kubernetes service discovery only (Debian's package, which
#   the other tests use, is built without it);
# - Traefik from its Go module, the ingress controller (one process outside the cluster, reading
#   Ingresses through the API server), as k3s ships it;
# - metrics-server from its Go module (the resource metrics API the HPA reads);
# - the pod sandbox image (tests/node/pause, built here: no registry serving
#   registry.k8s.io/pause is reachable), saved as an OCI archive for `ctr images import`.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
cd "$(dirname "$0")/.."
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
COREDNS_VERSION=v1.12.1
PROMETHEUS_VERSION=3.16.0
PROMETHEUS_MODULE=v0.316.0  # the Go module's tag of that release (3.x.y is v0.3xx.y)
# 3.7 cannot be built from the module proxy (its dynamic/ext module and some ACME providers'
# SDKs are not served).
TRAEFIK_VERSION=v3.6.12
METRICS_SERVER_VERSION=v0.8.0
OUT="$CACHE/node"
bash scripts/apt-ensure.sh containerd runc containernetworking-plugins iptables buildah conntrack
stamp="coredns $COREDNS_VERSION (kubeadm plugins), prometheus $PROMETHEUS_VERSION, traefik $TRAEFIK_VERSION (no ACME DNS providers), metrics-server $METRICS_SERVER_VERSION, pause $(sha256sum tests/node/pause/main.go | cut -c1-12)"
if [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$stamp" ]; then
  echo "$OUT"
  exit 0
fi
go_env install-node
echo "building CoreDNS $COREDNS_VERSION, Prometheus $PROMETHEUS_VERSION, Traefik $TRAEFIK_VERSION, metrics-server $METRICS_SERVER_VERSION and the pause image into $OUT (once; ~6 minutes on 2 cores)" >&2
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
# Each of CoreDNS and Traefik is built from a writable copy of its module's source, trimmed to
# what the tests use (scripts/trim-go-tools.py: CoreDNS without its cloud DNS plugins, Traefik
# without ACME's DNS-challenge providers; about a third of each build).
build_trimmed() { # NAME MODULE@VERSION OUTPUT LDFLAGS PACKAGE
  local src
  src="$(go mod download -json "$2" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  rm -rf "$OUT.$1-src" && cp -r "$src" "$OUT.$1-src" && chmod -R u+w "$OUT.$1-src"
  python3 scripts/trim-go-tools.py "$1" "$OUT.$1-src"
  (cd "$OUT.$1-src" && go build -ldflags "$4" -o "$3" "$5") >&2
  rm -rf "$OUT.$1-src"
}
build_trimmed coredns "github.com/coredns/coredns@$COREDNS_VERSION" "$OUT.tmp/coredns" "-s -w" .
GOBIN="$OUT.tmp" go install -tags remove_all_sd,enable_kubernetes_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE" >&2
GOBIN="$OUT.tmp" go install -ldflags "-s -w" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" >&2
# (Traefik's go.mod replaces modules, which `go install module@version` refuses anyway.)
build_trimmed traefik "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" "$OUT.tmp/traefik" \
  "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v}" ./cmd/traefik
(cd tests/node/pause && go build -ldflags "-s -w" -o "$OUT.tmp/pause" .)
# shellcheck source=scripts/containers-env.sh
source scripts/containers-env.sh
ctr="$(buildah from scratch)"
buildah copy --quiet "$ctr" "$OUT.tmp/pause" /pause >/dev/null
buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
buildah commit --quiet --rm "$ctr" localhost/pause:test >/dev/null
buildah push --quiet localhost/pause:test "oci-archive:$OUT.tmp/pause.tar:localhost/pause:test" >&2
echo "$stamp" > "$OUT.tmp/VERSION"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "$OUT"
