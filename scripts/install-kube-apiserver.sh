#!/usr/bin/env bash
# Builds a real kube-apiserver (v1.20.2, from Debian's `kubernetes` source package, with Debian's
# Go) into the cache once, and installs etcd from Debian; prints the kube-apiserver path.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
BIN="$CACHE/kube-apiserver/kube-apiserver"
export DEBIAN_FRONTEND=noninteractive
if ! command -v etcd >/dev/null || ! command -v go >/dev/null || ! command -v rsync >/dev/null; then
  echo "installing etcd-server, golang-go, rsync (Debian packages)" >&2
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends golang-go rsync jq etcd-server >&2
fi
if [ ! -x "$BIN" ]; then
  echo "building kube-apiserver 1.20.2 into $CACHE/kube-apiserver (about 6 minutes, once)" >&2
  src_list=/etc/apt/sources.list.d/image-gateway-src.sources
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src_list"
  trap 'rm -f "$src_list"' EXIT
  apt-get update -qq >&2
  work="$CACHE/kubernetes-src"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  apt-get source --download-only kubernetes >&2
  tar xzf kubernetes_*.orig.tar.gz
  cd kubernetes-1.20.2
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  GOPATH="$PWD/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor HOME="$(mktemp -d)" \
    make WHAT=cmd/kube-apiserver >&2
  mkdir -p "$CACHE/kube-apiserver"
  cp _output/bin/kube-apiserver "$BIN"
  cd "$CACHE" && rm -rf "$work"
  rm -f "$src_list"
  apt-get update -qq >&2 || true
fi
echo "$BIN"
