"""The chart's autoscaling on the node: metrics-server serves the kubelet's resource metrics
through the aggregation layer, the controller-manager's HPA scales the gateway out under
processing load and back in after it, and downloads lose nothing meanwhile; with the
queue-depth option, KEDA scales the processing pods on their queue, read from Prometheus."""

import json
import time

from conftest import Prometheus, free_port, http, scrape_config, wait_until
from load import Load, Resizes
from test_install import API_KEY, RELEASE, installed, node_port, pods, ready_pods
from test_memory import gradient_png

NAMESPACE = "autoscaling"
SERVER = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"
# Short windows, so a test sees both directions in about two minutes; shutdown.grace as in
# test_operations.py (a pod leaving under load keeps accepting until kube-proxy has dropped it).
BEHAVIOR = {"scaleUp": {"stabilizationWindowSeconds": 0},
            "scaleDown": {"stabilizationWindowSeconds": 15, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]}}
VALUES = ("--set", "service.type=NodePort", "--set", "shutdown.grace=15s", "--set", "autoscaling.enabled=true",
          "--set", "autoscaling.minReplicas=1", "--set", "autoscaling.maxReplicas=2",
          "--set", "autoscaling.targetCPUUtilizationPercentage=50", "--set-json", f"autoscaling.behavior={json.dumps(BEHAVIOR)}")


def running(node):
    return ready_pods(node, NAMESPACE, SERVER)


def pod_metrics(node):
    got = node.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods", check=False)
    return {p["metadata"]["name"]: p for p in json.loads(got.stdout)["items"]} if got.returncode == 0 else {}


def answered(pod):
    """The requests a pod answered with a success (its own metrics, on its admin port)."""
    (container,) = pod["spec"]["containers"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    status, _, body = http("GET", f"http://{pod['status']['podIP']}:{port}/metrics")
    assert status == 200, body
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith("http_requests_total{") and 'status="2' in line)


def test_the_hpa_scales_out_under_processing_load_and_back_in_losing_no_download(node, helm_env):
    with installed(node, helm_env, "helm4", NAMESPACE, *VALUES):
        port = node_port(node, NAMESPACE, RELEASE)
        (first,) = running(node)
        wait_until("metrics-server reports the pod's CPU", lambda: first["metadata"]["name"] in pod_metrics(node),
                   timeout=180)
        key = {"X-API-Key": API_KEY}
        status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", gradient_png(2000, 1500),
                               {**key, "Content-Type": "image/png"})
        assert status == 201, body
        source = json.loads(body)["object_name"]

        # Processing load: resizes answered as bytes (nothing stored), 3 at a time against one worker
        # per pod. A full queue answers 503 with Retry-After (the bounded refusal): counted, allowed.
        mix = [("GET", f"/v1/image/download/{source}", None, key, 200)]
        with Load(port, mix, rate=40, connections=4, max_seconds=900) as load:
            started = time.monotonic()
            with Resizes(f"http://127.0.0.1:{port}", source, key, clients=3, timeout=120) as resizes:
                wait_until("the HPA scales out to 2 ready pods", lambda: len(running(node)) == 2, timeout=300, every=1)
                scaled_out = time.monotonic() - started
                (new,) = [p for p in running(node) if p["metadata"]["uid"] != first["metadata"]["uid"]]
                # Kube-proxy balances connections, not requests: the download load's keep-alive
                # connections stay where they are, the processing requests' new ones spread.
                wait_until("the new pod serves requests", lambda: answered(new) >= 10, timeout=60)
            answers = resizes.answers
            stopped = time.monotonic()
            wait_until("the HPA scales back in to 1 pod", lambda: len(pods(node, NAMESPACE, SERVER)) == 1,
                       timeout=300, every=1)
            scaled_in = time.monotonic() - stopped
            time.sleep(3)
        tally = load.tally
        hpa = json.loads(node.kubectl("get", "hpa", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
        print(f"HPA: 1 → 2 pods {scaled_out:.0f} s after the processing load started, 2 → 1 {scaled_in:.0f} s after it "
              f"stopped; processing answers {dict(answers)}; downloads meanwhile: {tally.summary()}")
        assert set(answers) <= {200, 503} and answers.get(200), (answers, resizes.errors[:5])
        assert not tally.failures and tally.resets == 0, f"{tally.summary()}: {tally.failures[:10]}"
        assert hpa["status"]["currentReplicas"] == 1


QUEUE_NAMESPACE = "queue-scaling"
QUEUE_HOST = "queue.images.test"
PROCESSING = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=processing"


def test_keda_scales_the_processing_pods_on_their_queue_and_back_in(node, helm_env, keda, traefik, tmp_path):
    """The chart's queue-depth option: a KEDA ScaledObject whose Prometheus trigger reads
    `image_processing_queue_depth` of the processing pods. Their CPU target is out of reach
    (1000 % of the request: one worker uses at most one core, 200 %), so only the queue scales."""
    prometheus_port = free_port()
    # upload.maxConcurrent: a processing request holds an intake slot too; 8 of them (of 8 MiB, so
    # the memory the render checks still fits the default limit) take the 6 clients below.
    with installed(node, helm_env, "helm4", QUEUE_NAMESPACE, "--set", "replicaCount=1", "--set", "shutdown.grace=15s",
                   "--set", "upload.maxConcurrent=8", "--set", "upload.maxBytes=8Mi",
                   "--set", "processingPods.enabled=true", "--set", "processingPods.autoscaling.enabled=true",
                   "--set", "processingPods.autoscaling.minReplicas=1", "--set", "processingPods.autoscaling.maxReplicas=2",
                   "--set", "processingPods.autoscaling.targetCPUUtilizationPercentage=1000",
                   "--set-json", f"processingPods.autoscaling.behavior={json.dumps(BEHAVIOR)}",
                   "--set", "processingPods.autoscaling.queueDepth.enabled=true",
                   "--set", f"processingPods.autoscaling.queueDepth.prometheusUrl=http://127.0.0.1:{prometheus_port}",
                   "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.interval=2s",
                   "--set", "ingress.enabled=true", "--set", "ingress.className=traefik",
                   "--set", f"ingress.hosts[0].host={QUEUE_HOST}", "--set", "ingress.hosts[0].paths[0].path=/"):
        monitor = json.loads(node.kubectl("get", "servicemonitor", RELEASE, "-n", QUEUE_NAMESPACE, "-o", "json").stdout)
        prometheus = Prometheus(tmp_path / "prometheus", {
            "global": {"scrape_interval": "2s"},
            "scrape_configs": [scrape_config(monitor, node.cluster.url, node.cluster.ADMIN_TOKEN)]}, port=prometheus_port)
        hpa_name = f"{RELEASE}-processing"
        try:
            traefik.wait_routes(QUEUE_HOST)

            def scaled_object_ready():
                got = json.loads(node.kubectl("get", "scaledobject", hpa_name, "-n", QUEUE_NAMESPACE, "-o", "json").stdout)
                return any(c["type"] == "Ready" and c["status"] == "True" for c in got.get("status", {}).get("conditions", []))
            wait_until("KEDA's ScaledObject Ready and its HPA made", lambda: scaled_object_ready() and node.kubectl(
                "get", "hpa", hpa_name, "-n", QUEUE_NAMESPACE, check=False).returncode == 0, timeout=180)
            (first,) = ready_pods(node, QUEUE_NAMESPACE, PROCESSING)
            key = {"X-API-Key": API_KEY, "Host": QUEUE_HOST}
            status, _, body = http("POST", f"{traefik.url}/v1/image/upload", gradient_png(2000, 1500),
                                   {**key, "Content-Type": "image/png"})
            assert status == 201, body
            source = json.loads(body)["object_name"]

            # 6 resize clients against one worker: 1 job running and 5 waiting, 3 × the target of 2.
            mix = [("GET", f"/v1/image/download/{source}", None, key, 200)]
            with Load(traefik.port, mix, rate=20, connections=2, max_seconds=900) as load:
                started = time.monotonic()
                with Resizes(traefik.url, source, key, clients=6) as resizes:
                    wait_until("KEDA scales the processing pods out to 2", lambda: len(
                        ready_pods(node, QUEUE_NAMESPACE, PROCESSING)) == 2, timeout=300, every=1)
                    scaled_out = time.monotonic() - started
                    hpa = json.loads(node.kubectl("get", "hpa", hpa_name, "-n", QUEUE_NAMESPACE, "-o", "json").stdout)
                    (new,) = [p for p in ready_pods(node, QUEUE_NAMESPACE, PROCESSING)
                              if p["metadata"]["uid"] != first["metadata"]["uid"]]
                    wait_until("the new processing pod takes jobs", lambda: answered(new) >= 1, timeout=120)
                answers = resizes.answers
                stopped = time.monotonic()
                wait_until("KEDA scales the processing pods back in to 1", lambda: len(
                    pods(node, QUEUE_NAMESPACE, PROCESSING)) == 1, timeout=300, every=1)
                scaled_in = time.monotonic() - stopped
            metrics = {m["type"]: m for m in hpa["status"].get("currentMetrics", [])}
            queue = metrics["External"]["external"]
            average = queue["current"]["averageValue"]  # a quantity: "3", "2500m"
            per_pod = float(average[:-1]) / 1000 if average.endswith("m") else float(average)
            cpu = metrics.get("Resource", {}).get("resource", {}).get("current", {}).get("averageUtilization")
            print(f"KEDA: processing pods 1 → 2 {scaled_out:.0f} s after the queue built up, 2 → 1 {scaled_in:.0f} s after "
                  f"it drained; the HPA read {queue['metric']['name']} = {per_pod:g} jobs per pod (target 2) at CPU "
                  f"{cpu} % (target 1000 %); resizes {dict(answers)}; downloads meanwhile: {load.tally.summary()}")
            assert per_pod >= 2, "the queue, read through KEDA, is what scaled the pods out"
            assert cpu is None or cpu < 1000, "the CPU target was not reached"
            # Every resize reached a processing pod, except when the one processing pod was not ready
            # (a loaded node): Traefik then drops the Ingress path of a Service without endpoints and
            # the request falls through to `/`, the serving pods, which refuse it with 503 and
            # Retry-After (processing off there), as a full queue would.
            assert answers[200] >= 100 and set(answers) <= {200, 503}, answers
            assert not load.tally.failures and load.tally.resets == 0, load.tally.summary()
        except AssertionError:
            print(keda.logs())
            raise
        finally:
            prometheus.stop()
