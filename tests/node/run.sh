#!/usr/bin/env bash
# Runs the node tests (pytest, tests/node/) inside namespaces of their own: a network namespace
# (the node's bridge, pod and Service addresses from 198.18.0.0/15, kube-proxy's rules, the
# servers' ports: none of it exists outside), a mount namespace (the kubelet's volume mounts,
# containerd's snapshots and pod network namespaces), a PID namespace (when the run ends, the
# kernel stops every process it started, containers included). The tests reach everything
# through the namespace's own 127.0.0.1. The cgroups the kubelet made (under /ig-node) are
# removed afterwards.
#
# Needs root, the cache filled by scripts/install-kube.sh, install-node.sh, install-chart-tools.sh,
# install-minio.sh, and the image from scripts/build-image.sh (IG_IMAGE); scripts/test.sh does it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
cleanup() {
  for controller in /sys/fs/cgroup/*/; do
    [ -d "$controller/ig-node" ] && find "$controller/ig-node" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
trap cleanup EXIT
cleanup
unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -c '
  set -euo pipefail
  # The new network namespace'"'"'s own /sys (network devices), keeping the cgroup hierarchies.
  mkdir -p /run/ig-node-cgroup
  mount --rbind /sys/fs/cgroup /run/ig-node-cgroup
  mount -t sysfs sysfs /sys
  mount --move /run/ig-node-cgroup /sys/fs/cgroup
  ip link set lo up
  exec "$@"' bash "$IG_CACHE/chart-venv/bin/python" -m pytest -q -p no:cacheprovider --durations=0 --durations-min=5 "${@:-tests/node}"
