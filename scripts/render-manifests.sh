#!/usr/bin/env bash
# Renders manifests/base/image-gateway.yaml from the chart with default values, for `kubectl apply -k`
# without Helm: the Helm-only labels (helm.sh/chart, app.kubernetes.io/managed-by: Helm) are left
# out, so kubectl (or Argo CD, Flux) owns the objects. scripts/check-chart.sh fails on drift.
#   bash scripts/render-manifests.sh            # rewrites manifests/base/image-gateway.yaml
#   bash scripts/render-manifests.sh OUT.yaml   # writes elsewhere (the drift check)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-manifests/base/image-gateway.yaml}"
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
TOOLS="$(bash scripts/install-chart-tools.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/c" HELM_CONFIG_HOME="$work/g" HELM_DATA_HOME="$work/d"
"$TOOLS/helm3/helm" template image-gateway charts/image-gateway --skip-tests --namespace image-gateway --kube-version 1.34.0 \
  --api-versions monitoring.coreos.com/v1 > "$work/rendered.yaml"
"$IG_CACHE/chart-venv/bin/python" - "$work/rendered.yaml" "$out" <<'PY'
import sys, yaml
HELM_ONLY = {"helm.sh/chart", "app.kubernetes.io/managed-by"}

def strip(node):
    if isinstance(node, dict):
        labels = node.get("labels")
        if isinstance(labels, dict):
            for key in HELM_ONLY:
                labels.pop(key, None)
        for value in node.values():
            strip(value)
    elif isinstance(node, list):
        for value in node:
            strip(value)

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for doc in docs:
    strip(doc["metadata"])
    strip(doc.get("spec"))
header = ("# Rendered from charts/image-gateway with default values by scripts/render-manifests.sh;\n"
          "# do not edit: change the chart and re-render (CI fails on drift).\n")
with open(sys.argv[2], "w") as f:
    f.write(header + yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True))
PY
