# shellcheck shell=bash
# Sourced by the installers that build Go programs: `go_env NAME` checks that Go is there (the
# machine's /usr/local/go; NAME names the installer in the error) and exports one environment for
# them all: module, build and path caches under $IG_CACHE/go (a second build, or a version bump,
# is quick), CGO off (an installer that needs cgo turns it back on), trimmed paths, this Go only,
# and no inlining (`-gcflags=all=-l`): these are the tests' tools, not the product, and without
# inlining they compile with a quarter less CPU (metrics-server, measured: 211 CPU-seconds
# instead of 277; `-N` on top saved only 5 more), the largest part of a cold run.
go_env() {
  command -v go >/dev/null || { echo "$1: Go is needed (the machine's /usr/local/go)" >&2; exit 1; }
  local cache="${IG_CACHE:-$HOME/.cache/image-gateway}"
  export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOPATH="$cache/go/path"
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -gcflags=all=-l" GOTOOLCHAIN=local
}
