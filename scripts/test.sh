#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs what the tests need (Garage,
# MinIO, schemathesis, rotel, Prometheus, the Kubernetes control plane and node with etcd,
# containerd, runc, CoreDNS, Traefik, metrics-server, KEDA, Redis, cargo-fuzz, cargo-deny,
# Chromium, Pillow, pyvips, cmake and NASM, wrk and nginx; once, into a cache outside the clone),
# then runs every test and a tiny run of every benchmark.
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
# The node's Debian packages first, in the foreground: two apt-get runs at once would fight over
# dpkg's lock (install-node.sh and build-image.sh then find them installed).
phase "install containerd, runc, the CNI plugins, buildah, podman (Debian)"
bash scripts/apt-ensure.sh containerd runc containernetworking-plugins iptables conntrack buildah podman mmdebstrap uidmap
# In the background from the start, one after the other: the Go builds (MinIO, the Kubernetes
# control plane and node, CoreDNS, Prometheus, Traefik, metrics-server, KEDA; on a cold machine
# ~30 CPU-minutes) and the container image (buildah, the Dockerfile, local stand-ins for its two
# bases; ~20 CPU-minutes of release compilation), then the node tests on that image. Those are
# the run's longest chain; the foreground phases, which need neither the image nor (until the
# chart tests) the Go builds, share the cores with it. Each step leaves `$builds/NAME.status`
# (its exit code) and `$builds/NAME.log` (its output and CPU time); `await NAME` waits for it.
builds="$(mktemp -d)"
mark() { echo "$2" >"$builds/$1.status.tmp" && mv "$builds/$1.status.tmp" "$builds/$1.status"; }
await() {
  while [ ! -f "$builds/$1.status" ]; do sleep 2; done
  return "$(cat "$builds/$1.status")"
}
phase "Go builds, then the container image, then the node tests (in the background)"
# The chain keeps the default priority; what the foreground compiles runs at `low` priority
# (nice 10), so the chain is not slowed by it and the node tests overlap the foreground's last
# phases instead of running alone at the end, on a core and a half of idle.
low() { nice -n 10 "$@"; }
(
  status=0
  TIMEFORMAT="the Go builds: %0R s, %0U s user and %0S s system CPU"
  { time { bash scripts/install-minio.sh >"$builds/minio" && bash scripts/install-kube.sh >"$builds/kube" \
    && bash scripts/install-node.sh >"$builds/node" && bash scripts/install-keda.sh >"$builds/keda"; }; } \
    2>"$builds/go.log" || status=$?
  mark go "$status"
  # A failed step fails the steps after it, so that nothing waits for them forever.
  [ "$status" = 0 ] || { mark image 97; mark node-tests 97; exit 0; }
  TIMEFORMAT="the container image: %0R s, %0U s user and %0S s system CPU"
  { time bash scripts/build-image.sh >"$builds/image"; } 2>"$builds/image.log" || status=$?
  mark image "$status"
  [ "$status" = 0 ] || { mark node-tests 97; exit 0; }
  IG_MINIO_BIN="$(cat "$builds/minio")" IG_KUBE_BIN_DIR="$(cat "$builds/kube")"
  IG_NODE_DIR="$(cat "$builds/node")" IG_KEDA_DIR="$(cat "$builds/keda")" IG_IMAGE="$(cat "$builds/image")"
  export IG_MINIO_BIN IG_KUBE_BIN_DIR IG_NODE_DIR IG_KEDA_DIR IG_IMAGE
  phase "container image built ($IG_IMAGE); node tests (pytest, tests/node/: the chart on a real node; in the background)"
  # The foreground asks for the same tools (the chart checks); the installer takes a lock.
  # -s: the tests' figures (rollout, scaling and latency lines) go to the log too.
  { bash scripts/install-chart-tools.sh >/dev/null && bash tests/node/run.sh tests/node -s; } >"$builds/node-tests.log" 2>&1 \
    || status=$?
  mark node-tests "$status"
) &
# Formatting, lints and the library's docs, when CI asks for them (.ci/run): after the chain has
# started, so that its Go builds do not wait for clippy.
if [ "${IG_LINT:-0}" = 1 ]; then
  phase "cargo fmt"
  cargo fmt --check
  bash scripts/apt-ensure.sh nasm cmake g++
  phase "clippy"
  low cargo clippy --locked --all-targets -- -D warnings
  phase "clippy --features native-codecs"
  low cargo clippy --locked --all-targets --features native-codecs -- -D warnings
  phase "cargo doc"
  RUSTDOCFLAGS="-D warnings" low cargo doc --locked --no-deps --lib --quiet
fi
phase "install Garage"
IG_GARAGE_BIN="$(low bash scripts/install-garage.sh)"
export IG_GARAGE_BIN
phase "install the Python tools"
venv="$(low bash scripts/install-python-tools.sh)"
if [ "${IG_LINT:-0}" = 1 ]; then
  # bench/ is code too: its Python and every shell script, linted (ruff.toml; warnings and up).
  phase "ruff and shellcheck"
  "$venv/bin/ruff" check --quiet bench scripts tests/chart tests/node
  bash scripts/apt-ensure.sh shellcheck
  shellcheck -S warning bench/*.sh scripts/*.sh tests/node/*.sh .ci/run
fi
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
# One debug build of the server and the tests (native-codecs), for all that follows.
phase "the tests' debug build"
low bash scripts/build-debug.sh >/dev/null
# The API description against the running server (schemathesis, from PyPI, cached).
phase "schemathesis"
bash scripts/schemathesis.sh
# The chart, the manifests and the Dockerfile (helm, kubernetes-validate, yamllint, hadolint, checkov).
phase "chart tools (Helm 3 and 4)"
low bash scripts/install-chart-tools.sh >/dev/null
phase "chart checks"
bash scripts/check-chart.sh
phase "wait for the Go builds (MinIO, the Kubernetes control plane and node, ...)"
go_status=0
await go || go_status=$?
cat "$builds/go.log" >&2
if [ "$go_status" != 0 ]; then
  echo "the Go builds failed (their output is above)" >&2
  exit 1
fi
IG_MINIO_BIN="$(cat "$builds/minio")"
IG_KUBE_BIN_DIR="$(cat "$builds/kube")"
IG_NODE_DIR="$(cat "$builds/node")"
IG_KEDA_DIR="$(cat "$builds/keda")"
export IG_MINIO_BIN IG_KUBE_BIN_DIR IG_NODE_DIR IG_KEDA_DIR
echo "garage: $("$IG_GARAGE_BIN" --version 2>/dev/null | head -1)"
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
echo "rotel: $("$IG_ROTEL_BIN" --version)"
echo "minio: $(cat "$(dirname "$IG_MINIO_BIN")/VERSION")"
echo "redis: $("$IG_REDIS_BIN" --version)"
echo "kube-apiserver: $("$IG_KUBE_BIN_DIR/kube-apiserver" --version), etcd: $("$IG_KUBE_BIN_DIR/etcd" --version | head -1)"
# Every benchmark (bench/) in a tiny run against the tests' debug build, so that none rots
# between its rare full runs: each must exit 0 and write every part of its JSON, answered
# without errors (bench/smoke.sh; ~50 s). Here, after the Go builds: MinIO is the main store of
# load.py and the only one of variants.py and retention.py. References: MinIO, Redis and
# Debian's nginx only, no imgproxy, thumbor nor pyvips (source builds of many minutes).
phase "benchmark smoke runs"
bash bench/smoke.sh "$CARGO_TARGET_DIR/debug/image-gateway"
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
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" FUZZ_PROFILE="${FUZZ_PROFILE:-dev}" low bash scripts/fuzz-smoke.sh
# One build of the tests, with the native-codecs feature (libjpeg-turbo and libaom, what the
# container image runs; cmake and NASM build them, from Debian, once), made by schemathesis.sh (scripts/build-debug.sh). That
# build also has the pure-Rust JPEG decoder (what `cargo run` uses): the processing tests run a
# second time with it, from the same binaries.
phase "processing tests with the pure-Rust JPEG decoder"
IG_JPEG_DECODER=rust cargo test --locked --features native-codecs --lib --bins --tests -- processing:: process
# Unit tests and the integration test binary (native-codecs); their summary lines close the run.
phase "unit and integration tests"
cargo test --locked --features native-codecs --lib --bins --tests "$@"
phase "wait for the container image and the node tests"
node_status=0
await node-tests || node_status=$?
grep -v '^ *\(Compiling\|Downloaded\|Downloading\)' "$builds/image.log" >&2 || true
cat "$builds/node-tests.log" 2>/dev/null || true
image_status="$(cat "$builds/image.status")"
rm -rf "$builds"
if [ "$image_status" = 97 ]; then
  echo "the node tests did not run: the Go builds failed" >&2; exit 1
elif [ "$image_status" != 0 ]; then
  echo "the image build failed (its output is above)" >&2; exit 1
fi
if [ "$node_status" != 0 ]; then
  echo "the node tests failed (their output is above)" >&2; exit 1
fi
