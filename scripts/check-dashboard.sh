#!/usr/bin/env bash
# The Grafana dashboard: type-checked against @grafana/schema's Dashboard type with tsc --strict,
# and every panel's PromQL parsed by promtool (as recording rules, variables filled in).
set -euo pipefail
cd "$(dirname "$0")/.."
NODE="$1"
DASHBOARD=charts/image-gateway/dashboards/image-gateway.json
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  echo "import type { Dashboard } from '@grafana/schema';"
  printf 'export const dashboard: Dashboard = '
  cat "$DASHBOARD"
  echo ';'
} > "$work/dashboard.ts"
ln -s "$NODE/node_modules" "$work/node_modules"
"$NODE/node_modules/.bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext --target es2022 --skipLibCheck "$work/dashboard.ts"
python3 - "$DASHBOARD" "$work/panels.rules.yaml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
rules = []
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = (target["expr"].replace("$__rate_interval", "5m")
                .replace("$namespace", "ns").replace("$job", "job"))
        rules.append({"record": f"panel_{panel['id']}_{target['refId']}", "expr": expr})
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"{len(rules)} panel queries")
PY
promtool check rules "$work/panels.rules.yaml"
