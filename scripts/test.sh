#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs what the tests need (Garage,
# MinIO, schemathesis, rotel, Prometheus, the Kubernetes control plane and node with etcd,
# containerd, runc, CoreDNS, Traefik, metrics-server, KEDA, Redis, cargo-fuzz, cargo-deny,
# Chromium, Pillow, pyvips, cmake and NASM; once, into a cache outside the clone), then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
# No incremental state (a clean clone gains little from it, and it is gigabytes); the cache is
# pruned before building when the disk runs low.
export CARGO_INCREMENTAL=0
# shellcheck source=scripts/phase.sh
source scripts/phase.sh
phase "test command: prune the cache"
bash scripts/prune-cache.sh
# The Go builds (MinIO and the Kubernetes control plane, about 12 minutes of a cold run) start
# first, in the background: the Rust builds that follow leave a core idle in their long
# single-threaded ends (the last crates, linking), and Go fills it. Their output is shown when
# they are waited for.
# The node's Debian packages first, in the foreground: two apt-get runs at once would fight over
# dpkg's lock (install-node.sh and build-image.sh then find them installed).
phase "install containerd, runc, the CNI plugins, buildah, podman (Debian)"
bash scripts/apt-ensure.sh containerd runc containernetworking-plugins iptables conntrack buildah podman mmdebstrap uidmap
# The container image from the Dockerfile (buildah; local stand-ins for its two bases, made once;
# a cold build is ~20 CPU-minutes of release compilation), in the background from the start: on
# a cold machine it shares the cores with Garage and the Go builds instead of lengthening the
# end of the run, and on a warm one it is ready within minutes. `$image_out/status` marks its end.
phase "container image (buildah, the Dockerfile; in the background)"
image_out="$(mktemp -d)"
( status=0; bash scripts/build-image.sh >"$image_out/image" 2>"$image_out/log" || status=$?
  echo "$status" >"$image_out/status.tmp" && mv "$image_out/status.tmp" "$image_out/status" ) &
phase "install MinIO, the Kubernetes control plane and node, CoreDNS, Prometheus, Traefik, metrics-server, KEDA (Go, in the background)"
go_out="$(mktemp -d)"
( bash scripts/install-minio.sh >"$go_out/minio" && bash scripts/install-kube.sh >"$go_out/kube" \
  && bash scripts/install-node.sh >"$go_out/node" && bash scripts/install-keda.sh >"$go_out/keda" ) 2>"$go_out/log" &
go_builds=$!
phase "install Garage"
IG_GARAGE_BIN="$(bash scripts/install-garage.sh)"
export IG_GARAGE_BIN
phase "install the Python tools"
venv="$(bash scripts/install-python-tools.sh)"
IG_ROTEL_BIN="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
export IG_ROTEL_BIN
export IG_PYTHON="$venv/bin/python"
phase "install Prometheus"
bash scripts/install-prometheus.sh >/dev/null
phase "install Chromium"
IG_CHROMIUM_BIN="$(bash scripts/install-chromium.sh)"
export IG_CHROMIUM_BIN
phase "install Ghostscript's ICC profiles and mate-backgrounds (the processing tests' CMYK profile and photographs)"
bash scripts/apt-ensure.sh libgs-common mate-backgrounds
phase "install Redis"
IG_REDIS_BIN="$(bash scripts/install-redis.sh)"
export IG_REDIS_BIN
# The module graph, read from src/: no import cycle, every import points down.
phase "architecture (module graph)"
bash scripts/check-architecture.sh
# Licences, bans and sources of every dependency (cargo-deny, crates.io, cached; deny.toml).
phase "dependencies (cargo-deny)"
bash scripts/check-deps.sh
phase "wait for the Go builds (MinIO, the Kubernetes control plane)"
if ! wait "$go_builds"; then
  cat "$go_out/log" >&2
  echo "the Go builds failed (their output is above)" >&2
  exit 1
fi
cat "$go_out/log" >&2
IG_MINIO_BIN="$(cat "$go_out/minio")"
IG_KUBE_BIN_DIR="$(cat "$go_out/kube")"
IG_NODE_DIR="$(cat "$go_out/node")"
IG_KEDA_DIR="$(cat "$go_out/keda")"
export IG_MINIO_BIN IG_KUBE_BIN_DIR IG_NODE_DIR IG_KEDA_DIR
rm -rf "$go_out"
echo "garage: $("$IG_GARAGE_BIN" --version 2>/dev/null | head -1)"
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
echo "rotel: $("$IG_ROTEL_BIN" --version)"
echo "minio: $(cat "$(dirname "$IG_MINIO_BIN")/VERSION")"
echo "redis: $("$IG_REDIS_BIN" --version)"
echo "kube-apiserver: $("$IG_KUBE_BIN_DIR/kube-apiserver" --version), etcd: $("$IG_KUBE_BIN_DIR/etcd" --version | head -1)"
# In the background, once the image is built: the node tests on it, a single-node cluster
# (containerd, runc, kubelet, kube-proxy, CoreDNS beside the control plane, inside namespaces of
# the tests' own, tests/node/run.sh). The foreground phases leave a core idle much of the time
# (checkov, schemathesis, one fuzz target at a time), and the node tests wait on pods, rollouts
# and scaling windows most of theirs.
phase "node tests, once the image is built (in the background)"
node_out="$(mktemp -d)"
(
  while [ ! -f "$image_out/status" ]; do sleep 2; done
  [ "$(cat "$image_out/status")" = 0 ] || exit 97
  IG_IMAGE="$(cat "$image_out/image")"
  export IG_IMAGE
  phase "container image built ($IG_IMAGE); node tests (pytest, tests/node/: the chart on a real node; in the background)"
  # The foreground asks for the same tools (the chart checks); the installer takes a lock.
  bash scripts/install-chart-tools.sh >/dev/null 2>"$node_out/chart-tools.log"
  # -s: the tests' figures (rollout, scaling and latency lines) go to the log too.
  bash tests/node/run.sh tests/node -s >"$node_out/log" 2>&1
) &
node_tests=$!
# The API description against the running server (schemathesis, from PyPI, cached).
phase "schemathesis"
bash scripts/schemathesis.sh
# The chart, the manifests and the Dockerfile (helm, kubernetes-validate, yamllint, hadolint, checkov).
phase "chart checks"
bash scripts/check-chart.sh
phase "chart tools"
IG_CHART_TOOLS="$(bash scripts/install-chart-tools.sh)"
export IG_CHART_TOOLS
# The chart rendered by Helm, and installed for real with Helm 3 and Helm 4 into the control plane
# (pytest, tests/chart/).
phase "chart tests (pytest)"
"$IG_CACHE/chart-venv/bin/python" -m pytest -q -p no:cacheprovider tests/chart
# Bounded fuzzing of the input parsers (cargo-fuzz, cached; FUZZ_SECONDS per target; the dev
# build, which compiles in half the time of the optimised one).
phase "fuzzing"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" FUZZ_PROFILE="${FUZZ_PROFILE:-dev}" bash scripts/fuzz-smoke.sh
# One build of the tests, with the libjpeg-turbo feature (what the container image runs; cmake
# and NASM build it, from Debian, once), made by schemathesis.sh (scripts/build-debug.sh). That
# build also has the pure-Rust JPEG decoder (what `cargo run` uses): the processing tests run a
# second time with it, from the same binaries.
phase "processing tests with the pure-Rust JPEG decoder"
IG_JPEG_DECODER=rust cargo test --locked --features libjpeg-turbo --lib --bins --tests -- processing:: process
# Unit tests and the integration test binary (libjpeg-turbo); their summary lines close the run.
phase "unit and integration tests"
cargo test --locked --features libjpeg-turbo --lib --bins --tests "$@"
phase "wait for the container image and the node tests"
node_status=0
wait "$node_tests" || node_status=$?
grep -v '^ *\(Compiling\|Downloaded\|Downloading\)' "$image_out/log" >&2 || true
cat "$node_out/chart-tools.log" "$node_out/log" 2>/dev/null || true
rm -rf "$node_out" "$image_out"
case "$node_status" in
  0) ;;
  97) echo "the image build failed (its output is above)" >&2; exit 1 ;;
  *) echo "the node tests failed (their output is above)" >&2; exit 1 ;;
esac
