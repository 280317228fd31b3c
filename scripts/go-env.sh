# Sourced by the installers that build Go programs: `go_env NAME` checks that Go is there (the
# machine's /usr/local/go; NAME names the installer in the error) and exports one environment for
# them all: module, build and path caches under $IG_CACHE/go (a second build, or a version bump,
# is quick), CGO off (an installer that needs cgo turns it back on), trimmed paths, this Go only.
go_env() {
  command -v go >/dev/null || { echo "$1: Go is needed (the machine's /usr/local/go)" >&2; exit 1; }
  local cache="${IG_CACHE:-$HOME/.cache/image-gateway}"
  export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOPATH="$cache/go/path"
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
}
