"""The chart's monitoring on the node: a real Prometheus finds the gateway's pods the way the
chart's ServiceMonitor asks prometheus-operator to (Kubernetes service discovery of the metrics
Service's endpoints), scrapes them, and loads and evaluates the chart's PrometheusRule.

prometheus-operator itself is not run: `scrape_config` (conftest.py) writes the scrape configuration it
generates for a ServiceMonitor (the same discovery role, keep rules, and target labels: `job`
is the Service's name, then `namespace`, `service`, `pod`, `container`, `endpoint`), so a
selector or port name in the chart that matches nothing finds no target here either.
"""

import json
import time

import pytest
from cluster import apply_crds
from conftest import REPO, Prometheus, http, scrape_config, wait_until
from test_install import API_KEY, RELEASE, installed, node_port, pods

NAMESPACE = "observed"
SERVER = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"
JOB = f"{RELEASE}-metrics"  # the metrics Service's name: the job label of its targets


@pytest.fixture(scope="module")
def monitored(node, helm_env, tmp_path_factory):
    """The release with its ServiceMonitor and PrometheusRule, and a Prometheus configured from
    them as the operator would."""
    apply_crds(node.cluster)
    with installed(node, helm_env, "helm4", NAMESPACE, "--set", "service.type=NodePort",
                   "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.interval=2s",
                   "--set", "metrics.prometheusRule.enabled=true"):
        def get(kind):
            return json.loads(node.kubectl("get", kind, RELEASE, "-n", NAMESPACE, "-o", "json").stdout)

        monitor, rule = get("servicemonitor"), get("prometheusrule")
        config = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
                  "scrape_configs": [scrape_config(monitor, node.cluster.url, node.cluster.ADMIN_TOKEN)]}
        prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), config, rule["spec"])
        yield prometheus, rule["spec"], node_port(node, NAMESPACE, RELEASE)
        prometheus.stop()


def release_alerts(prometheus):
    return [a for a in prometheus.api("alerts")["alerts"] if a["labels"].get("namespace") == NAMESPACE]


def test_prometheus_finds_every_pod_through_the_service_monitor_and_scrapes_it(node, monitored):
    prometheus, _, port = monitored
    ready = {p["metadata"]["name"] for p in pods(node, NAMESPACE, SERVER)}
    assert len(ready) == 2

    def targets_up():
        active = [t for t in prometheus.api("targets", state="active")["activeTargets"]
                  if t["labels"].get("job") == JOB]
        return {t["labels"]["pod"] for t in active if t["health"] == "up"} == ready and len(active) == len(ready)
    wait_until("a healthy target per gateway pod, job " + JOB, targets_up, timeout=120)

    png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
    status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", png,
                           {"Content-Type": "image/png", "X-API-Key": API_KEY})
    assert status == 201, body
    name = json.loads(body)["object_name"]
    for _ in range(10):
        assert http("GET", f"http://127.0.0.1:{port}/v1/image/download/{name}", headers={"X-API-Key": API_KEY})[0] == 200
    selector = f'namespace="{NAMESPACE}",job="{JOB}"'
    wait_until("the downloads counted in Prometheus", lambda: (got := prometheus.query(
        f'sum(http_requests_total{{{selector},route="download",status="200"}})')) and float(got[0]["value"][1]) >= 10,
        timeout=60)
    reachable = prometheus.query(f"storage_reachable{{{selector}}}")
    assert {r["metric"]["pod"] for r in reachable} == ready and all(r["value"][1] == "1" for r in reachable)


def test_the_chart_alert_rules_load_evaluate_and_fire_on_a_storage_outage(node, monitored):
    prometheus, spec, _ = monitored
    expected = {(g["name"], r["alert"]) for g in spec["groups"] for r in g["rules"]}

    def evaluated():
        loaded = {(g["name"], r["name"]): r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
        return set(loaded) == expected and all(r["health"] == "ok" and not r["lastEvaluation"].startswith("0001")
                                               for r in loaded.values()) and loaded
    loaded = wait_until("every rule of the PrometheusRule loaded and evaluated", evaluated, timeout=60)
    assert "ImageGatewayTargetAbsent" in {alert for _, alert in loaded}, "the ServiceMonitor is on: TargetAbsent kept"
    wait_until("the targets scraped", lambda: prometheus.query(f'up{{namespace="{NAMESPACE}",job="{JOB}"}}'), timeout=60)
    time.sleep(5)  # two more evaluations, with every series present
    assert not release_alerts(prometheus), "a healthy release raises no alert"

    # Storage refuses the gateway's credentials: its background check fails, storage_reachable
    # turns 0 on each pod, and the chart's rule for it goes pending (its `for` is minutes).
    secret = json.loads(node.kubectl("get", "secret", "minio-credentials", "-n", NAMESPACE, "-o", "json").stdout)
    wrong = {"stringData": {"root-password": "not-the-password-0123"}}
    node.kubectl("patch", "secret", "minio-credentials", "-n", NAMESPACE, "-p", json.dumps(wrong))
    def storage_alert():
        return [a for a in release_alerts(prometheus) if a["labels"]["alertname"] == "ImageGatewayStorageUnreachable"]
    try:
        (alert,) = wait_until("ImageGatewayStorageUnreachable pending", storage_alert, timeout=90)
        assert alert["state"] in ("pending", "firing") and alert["labels"]["job"] == JOB, alert
    finally:
        node.kubectl("patch", "secret", "minio-credentials", "-n", NAMESPACE, "-p",
                     json.dumps({"data": secret["data"]}))
    wait_until("the alert ends once storage answers again", lambda: not storage_alert(), timeout=90)

