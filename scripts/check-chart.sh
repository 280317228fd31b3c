#!/usr/bin/env bash
# Checks the Helm chart, the plain manifests and the Dockerfile with the real tools:
# helm lint --strict and helm template (default values and every option on), kubernetes-validate
# --strict for Kubernetes 1.30, the rendered gateway.toml through `image-gateway check-config`,
# yamllint, hadolint, checkov (0 failed; skips are annotated in the chart with their reasons),
# and manifests/ must equal what the chart renders with default values.
set -euo pipefail
cd "$(dirname "$0")/.."
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
TOOLS="$(IG_CACHE="$IG_CACHE" bash scripts/install-chart-tools.sh)"
HELM="$TOOLS/helm3/helm"
VENV="$IG_CACHE/chart-venv/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/helm-cache" HELM_CONFIG_HOME="$work/helm-config" HELM_DATA_HOME="$work/helm-data"
CHART=charts/image-gateway
server_bin="$(bash scripts/build-debug.sh)"

render() { # name values-file-or-empty output
  local args=(template image-gateway "$CHART" --namespace image-gateway --kube-version 1.30.0 --api-versions monitoring.coreos.com/v1)
  [ -n "$2" ] && args+=(-f "$2")
  "$HELM" "${args[@]}" > "$3"
}

crate="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
grep -q "^appVersion: \"$crate\"$" "$CHART/Chart.yaml" || { echo "Chart.yaml appVersion is not the crate version $crate" >&2; exit 1; }

for values in "" "$CHART/ci/all-on-values.yaml"; do
  label="${values:-default values}"
  echo "== $label"
  if [ -n "$values" ]; then "$HELM" lint --strict "$CHART" -f "$values"; else "$HELM" lint --strict "$CHART"; fi
  out="$work/rendered-$(basename "${values:-default}" .yaml).yaml"
  render image-gateway "$values" "$out"
  "$VENV/kubernetes-validate" --strict --quiet -k 1.30.0 "$out"
  "$VENV/yamllint" -c charts/yamllint.yaml "$out"
  # The configuration the chart renders must be one the gateway accepts.
  "$VENV/python" - "$out" "$work/gateway.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
config = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["gateway.toml"]
open(sys.argv[2], "w").write(config)
PY
  env -u IMAGE_GATEWAY_CONFIG "$server_bin" check-config --config "$work/gateway.toml" >/dev/null
  "$VENV/checkov" --skip-download --quiet --compact --framework kubernetes -f "$out"
done
"$VENV/yamllint" -c charts/yamllint.yaml "$CHART/values.yaml" "$CHART/ci/all-on-values.yaml"
# values.schema.json types every value: a wrong one must fail the lint.
for bad in storage.backend=ftp shutdown.grace=soon replicaCount=0 auth.mode=open; do
  if "$HELM" lint --strict "$CHART" --set "$bad" >/dev/null 2>&1; then
    echo "values.schema.json accepted $bad" >&2
    exit 1
  fi
done

echo "== alerts, CRDs and the dashboard"
promtool check rules "$CHART/prometheus/alerts.yaml"
(cd "$CHART/prometheus" && promtool test rules alerts.test.yaml)
all_on="$work/rendered-all-on-values.yaml"
node scripts/validate-crds.mjs "$IG_CACHE/node-tools/node_modules" "$all_on"
# The PrometheusRule as rendered is what promtool checked.
"$VENV/python" - "$all_on" "$work/rendered.rules.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rule = [d for d in docs if d["kind"] == "PrometheusRule"][0]
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"))
PY
promtool check rules "$work/rendered.rules.yaml"
bash scripts/check-dashboard.sh "$IG_CACHE/node-tools"
"$VENV/hadolint" Dockerfile
"$VENV/checkov" --skip-download --quiet --compact --framework dockerfile -f Dockerfile

echo "== the rendered gateway.toml is a configuration the binary accepts (default and all-on values)"
for rendered in "$work/rendered-default.yaml" "$all_on"; do
  "$VENV/python" - "$rendered" "$work/gateway.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
config = [d for d in docs if d["kind"] == "ConfigMap" and "gateway.toml" in d.get("data", {})][0]
text = config["data"]["gateway.toml"]
assert "[storage]" in text and "[server]" in text, f"gateway.toml is incomplete:\n{text}"
open(sys.argv[2], "w").write(text)
PY
  "$server_bin" check-config --config "$work/gateway.toml" >/dev/null
done

echo "== README values table in sync with values.yaml"
"$VENV/python" scripts/values-table.py

echo "== manifests/ in sync with the chart"
bash scripts/render-manifests.sh "$work/manifests.yaml"
if ! diff -u manifests/base/image-gateway.yaml "$work/manifests.yaml"; then
  echo "manifests/base/image-gateway.yaml drifted from the chart: run scripts/render-manifests.sh" >&2
  exit 1
fi
if grep -q "managed-by: Helm\|helm.sh/chart" manifests/base/image-gateway.yaml; then
  echo "manifests/ carry Helm ownership labels" >&2
  exit 1
fi
echo "chart checks passed"
