// Validates the ServiceMonitor and PrometheusRule objects of rendered manifests against the
// prometheus-operator CRD schemas (npm @kubernetes-models/prometheus-operator).
// Usage: node scripts/validate-crds.mjs <node_modules dir> <rendered.yaml>
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [modules, file] = process.argv.slice(2);
const yaml = createRequire(`${modules}/`)("js-yaml");
const v1 = await import(pathToFileURL(`${modules}/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js`).href);
const kinds = { ServiceMonitor: v1.ServiceMonitor, PrometheusRule: v1.PrometheusRule };
let checked = 0;
for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
  if (!doc || !kinds[doc.kind]) continue;
  new kinds[doc.kind](doc).validate(); // throws with the schema violation
  checked += 1;
  console.log(`valid ${doc.kind}/${doc.metadata.name}`);
}
if (checked < Object.keys(kinds).length) {
  console.error(`expected a ServiceMonitor and a PrometheusRule in ${file}, validated ${checked}`);
  process.exit(1);
}
