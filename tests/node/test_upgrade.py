"""`helm upgrade` from an earlier chart to this one, under traffic, on the node: the README's
upgrade notes say "nothing to do by hand" from 0.2.0 on; the test takes the 0.2.0 chart from the
repository's history, installs it with the image under test, and counts every request while the
release moves to this chart (new labels, the metrics Service, new probes and pod settings).

0.1.0 cannot be the start: its gateway.toml renders empty with Helm 3.22 (`toToml` fails on the
values and Helm prints nothing), so its pods listen on 127.0.0.1 and never get ready.
"""

import json
import subprocess
import time

from conftest import CHART, REPO, helm, http, run
from load import Load
from test_install import API_KEY, RELEASE, image_values, installed, node_port, ready_pods
from test_operations import CONNECTIONS, RATE, RELEASE_VALUES, assert_clean, phase

NAMESPACE = "upgrade"
SERVER = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"


def chart_at(version, into):
    """The chart as it was at its commit of `version` (the repository's history)."""
    commits = run("git", "-C", REPO, "log", "--format=%H", "-G", f"^version: {version}$", "--",
                  "charts/image-gateway/Chart.yaml").stdout.split()
    assert commits, f"no commit of chart {version} in the history (a shallow clone?)"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commits[-1], "charts/image-gateway"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    chart = into / "charts" / "image-gateway"
    assert f"version: {version}" in (chart / "Chart.yaml").read_text()
    return chart


def test_helm_upgrade_from_chart_0_2_0_loses_no_request(node, helm_env, tmp_path):
    old_chart = chart_at("0.2.0", tmp_path)
    with installed(node, helm_env, "helm4", NAMESPACE, "--set", "service.type=NodePort", "--set", "shutdown.grace=15s",
                   chart=old_chart):
        port = node_port(node, NAMESPACE, RELEASE)
        key = {"X-API-Key": API_KEY}
        png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
        status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", png, {**key, "Content-Type": "image/png"})
        assert status == 201, body
        name = json.loads(body)["object_name"]
        old_pods = {p["metadata"]["name"] for p in ready_pods(node, NAMESPACE, SERVER)}
        assert len(old_pods) == 2
        mix = [("GET", f"/v1/image/download/{name}", None, key, 200)]
        with Load(port, mix, rate=RATE, connections=CONNECTIONS, max_seconds=600) as load:
            time.sleep(2)
            tally, seconds = phase(load, "helm upgrade from chart 0.2.0", lambda: helm(
                node, helm_env, "helm4", "upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reset-values",
                *image_values(), "--set", "storage.s3.endpoint=http://minio.minio.svc:9000", *RELEASE_VALUES,
                "--wait", "--timeout", "5m"))
        assert_clean(tally, seconds, "upgrade from 0.2.0")
        new_pods = {p["metadata"]["name"] for p in ready_pods(node, NAMESPACE, SERVER)}
        assert len(new_pods) == 2 and not new_pods & old_pods, "every pod was replaced"
        assert json.loads(node.kubectl("get", "service", f"{RELEASE}-metrics", "-n", NAMESPACE, "-o", "json").stdout)
