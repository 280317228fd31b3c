"""Processing in pods of its own (`processingPods`) on the node, behind Traefik: the Ingress sends
uploads and operations to the processing pods and downloads to the serving pods, which run with
processing off; a download's latency through the ingress, idle and while processing saturates
its own pods."""

import collections
import json
import time

import pytest
from conftest import http, wait_until
from load import Load, Resizes
from test_install import API_KEY, RELEASE, installed, ready_pods
from test_memory import gradient_png

NAMESPACE = "split"
HOST = "split.images.test"
SERVING = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"
PROCESSING = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=processing"
KEY = {"X-API-Key": API_KEY, "Host": HOST}


@pytest.fixture(scope="module")
def split(node, helm_env, traefik):
    """The release with one serving and one processing pod behind the chart's Ingress; Traefik's
    port."""
    with installed(node, helm_env, "helm4", NAMESPACE, "--set", "processingPods.enabled=true", "--set", "replicaCount=1",
                   "--set", "processingPods.replicaCount=1", "--set", "ingress.enabled=true",
                   "--set", "ingress.className=traefik", "--set", f"ingress.hosts[0].host={HOST}",
                   "--set", "ingress.hosts[0].paths[0].path=/"):
        traefik.wait_routes(HOST)
        # Traefik reads the processing Service's endpoints apart from the route: until it has, the
        # operations' path falls through to `/` and a serving pod refuses them (503). A resize of
        # an invalid source name is refused by the processing pod itself (400, not counted below).
        wait_until("Traefik routing operations to the processing pod", lambda: http(
            "POST", f"http://127.0.0.1:{traefik.port}/v1/image/resize?width=1&source=x", None, KEY)[0] == 400,
            timeout=120)
        yield traefik.port


def answered(pod):
    """The requests a pod answered with a success, by route (its own metrics, on its admin port)."""
    (container,) = pod["spec"]["containers"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    status, _, body = http("GET", f"http://{pod['status']['podIP']}:{port}/metrics")
    assert status == 200, body
    routes = collections.Counter()
    for line in body.decode().splitlines():
        if line.startswith("http_requests_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            if labels["status"].strip('"').startswith("2"):
                routes[labels["route"].strip('"')] += float(line.rsplit(" ", 1)[1])
    return routes


def one_pod(node, selector):
    (pod,) = ready_pods(node, NAMESPACE, selector)
    return pod


def upload(port, image):
    status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", image,
                           {**KEY, "Content-Type": "image/png"})
    assert status == 201, body
    return json.loads(body)["object_name"]


def test_uploads_and_operations_reach_the_processing_pods_and_downloads_the_serving_pods(node, split):
    serving, processing = one_pod(node, SERVING), one_pod(node, PROCESSING)
    name = upload(split, gradient_png(800, 600))
    status, _, body = http("POST", f"http://127.0.0.1:{split}/v1/image/resize?width=200&source={name}", None, KEY)
    assert status == 201, body
    result = json.loads(body)
    assert result["upload_url"] == f"http://{HOST}/v1/image/download/{result['object_name']}"
    for _ in range(5):
        assert http("GET", f"http://127.0.0.1:{split}/v1/image/download/{name}", headers=KEY)[0] == 200

    on_serving, on_processing = answered(serving), answered(processing)
    assert on_processing["upload"] == 1 and on_processing["resize"] == 1, on_processing
    assert on_serving["download"] == 5 and on_processing["download"] == 0, (on_serving, on_processing)
    assert on_serving["upload"] == 0 and on_serving["resize"] == 0, on_serving
    # Sent to a serving pod anyway, an operation is refused there, to be retried: its processing
    # is off.
    api_port = next(p["containerPort"] for p in serving["spec"]["containers"][0]["ports"] if p["name"] == "http")
    status, headers, body = http("POST", f"http://{serving['status']['podIP']}:{api_port}/v1/image/resize?width=100"
                                 f"&source={name}", None, {"X-API-Key": API_KEY})
    assert status == 503 and headers["Retry-After"] and "processing.enabled = false" in json.loads(body)["detail"], body


def test_downloads_keep_their_latency_while_processing_saturates_its_pods(node, split):
    source = upload(split, gradient_png(2000, 1500))
    small = upload(split, gradient_png(64, 64))
    mix = [("GET", f"/v1/image/download/{small}", None, KEY, 200)]

    def measure(seconds):
        with Load(split, mix, rate=50, connections=4, max_seconds=seconds) as load:
            time.sleep(seconds)
        return load.tally

    idle = measure(15)
    # Saturation: 4 resize clients against one worker, so the processing pod's worker is always
    # busy and its queue never empty.
    with Resizes(f"http://127.0.0.1:{split}", source, KEY, clients=4, timeout=120) as resizes:
        time.sleep(3)
        busy = measure(15)
    answers = resizes.answers
    print(f"downloads through the ingress: idle {idle.summary()}; while processing is saturated "
          f"{busy.summary()}; processing answers {dict(answers)}")
    assert set(answers) <= {200, 503} and answers.get(200, 0) >= 4, answers
    for tally in (idle, busy):
        assert tally.requests >= 500 and not tally.failures and tally.resets == 0, tally.summary()
    assert answered(one_pod(node, SERVING))["resize"] == 0, "no processing reached the serving pod"
