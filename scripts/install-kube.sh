#!/usr/bin/env bash
# Builds a current Kubernetes control plane and node into the cache, once: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl from the `k8s.io/kubernetes` Go module at one exact release, and the etcd
# that release is tested with, from its own Go module — all through the Go module proxy, CGO off.
#
# The kubernetes module replaces its staging modules (k8s.io/api, k8s.io/apimachinery, ...) with
# folders of its own repository; a scratch module points each of them at its published v0.x.y instead.
# Module and build caches stay under $IG_CACHE/go, so a rebuild after a version bump is quick.
# Prints the folder that holds the binaries.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
K8S_VERSION=v1.34.4
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
OUT="$CACHE/kube"
if [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$K8S_VERSION" ] && [ -x "$OUT/kube-apiserver" ] \
  && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/kubectl" ] && [ -x "$OUT/etcd" ] \
  && [ -x "$OUT/kubelet" ] && [ -x "$OUT/kube-scheduler" ] && [ -x "$OUT/kube-proxy" ]; then
  echo "$OUT"
  exit 0
fi
go_env install-kube
echo "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION and etcd into $OUT (once; ~15 minutes on 2 cores)" >&2
scratch="$CACHE/kube-build"
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch"
go mod init image-gateway/kube-build >/dev/null 2>&1
modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
# Every `k8s.io/X => ./staging/src/k8s.io/X` becomes `k8s.io/X => k8s.io/X@v0.N.P`.
sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$modfile" | while read -r m; do
  go mod edit -replace="$m=$m@$STAGING_VERSION"
done
go get "k8s.io/kubernetes@$K8S_VERSION" >&2
etcd_version="$(sed -n 's#^\s*go.etcd.io/etcd/server/v3 \(v[0-9.]*\).*#\1#p' "$modfile" | head -1)"
# Go builds from a module path need the packages in the build list.
cat > tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF
go get "go.etcd.io/etcd/server/v3@$etcd_version" >&2
go mod tidy >&2
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
go build -ldflags "$ldflags" -o "$OUT.tmp/" k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy >&2
go build -ldflags "-s -w" -o "$OUT.tmp/etcd" go.etcd.io/etcd/server/v3 >&2
echo "$K8S_VERSION" > "$OUT.tmp/VERSION"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
cd "$CACHE" && rm -rf "$scratch"
echo "$OUT"
