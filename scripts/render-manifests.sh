#!/usr/bin/env bash
# Regenerates manifests/ from the chart with default values (scripts/check-chart.sh fails on drift).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$(bash scripts/install-chart-tools.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/c" HELM_CONFIG_HOME="$work/g" HELM_DATA_HOME="$work/d"
mkdir -p manifests
"$TOOLS/helm/helm" template image-gateway charts/image-gateway --namespace image-gateway --kube-version 1.30.0 \
  --api-versions monitoring.coreos.com/v1 > manifests/image-gateway.yaml
