"""`helm install` onto a real node: the image built from the Dockerfile, run by containerd and
runc, probed by the kubelet, reached through a Service (kube-proxy) on 127.0.0.1."""

import contextlib
import json
import pathlib
import socket
import ssl
import time
import urllib.request

import pytest
from conftest import (
    CHART,
    HELMS,
    IMAGE,
    MINIO_PASSWORD,
    MINIO_USER,
    NODE_IP,
    REPO,
    helm,
    http,
    proc_status,
    restricted_namespace,
    root_mount_options,
    run,
    wait_until,
)

RELEASE = "image-gateway"  # the README's release name: its Service injects IMAGE_GATEWAY_* variables
API_KEY = "key-0123456789abcdef"


def image_values():
    repository, tag = IMAGE.rsplit(":", 1)
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never"]


def install(node, helm_env, which, namespace, *args, chart=CHART):
    """The chart as the README installs it, against the node's MinIO; the seconds until every pod
    was Ready (`helm install --wait`). `chart`: another version's folder."""
    restricted_namespace(node, namespace)
    node.kubectl("create", "secret", "generic", "minio-credentials", "-n", namespace,
                 f"--from-literal=root-user={MINIO_USER}", f"--from-literal=root-password={MINIO_PASSWORD}")
    node.kubectl("create", "secret", "generic", "image-gateway-api-keys", "-n", namespace,
                 f"--from-literal=app=write:{API_KEY}")
    started = time.monotonic()
    try:
        helm(node, helm_env, which, "install", RELEASE, chart, "-n", namespace, *image_values(),
             "--set", "storage.s3.endpoint=http://minio.minio.svc:9000", *args, "--wait", "--timeout", "5m")
    except AssertionError as e:
        pods = node.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        events = node.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"{pods}\n{events}\n{node.logs(['kubelet', 'containerd'])}") from e
    return time.monotonic() - started


@contextlib.contextmanager
def installed(node, helm_env, which, namespace, *args, chart=CHART):
    """`install`, and on leaving, whatever happened (a failed install included), the release
    uninstalled: a release left behind holds its pods' CPU requests, and every later test's pods
    stay Pending on the one node (a CI run lost three tests that way)."""
    try:
        yield install(node, helm_env, which, namespace, *args, chart=chart)
    finally:
        helm(node, helm_env, which, "uninstall", RELEASE, "-n", namespace, "--ignore-not-found", "--wait",
             "--timeout", "2m")
        wait_until("the release's pods gone", lambda: not pods(node, namespace, f"app.kubernetes.io/instance={RELEASE}"),
                   timeout=180)


def pods(node, namespace, selector):
    return json.loads(node.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]


def ready_pods(node, namespace, selector):
    """The pods serving: Running, every container ready, not being deleted."""
    return [p for p in pods(node, namespace, selector) if p["status"].get("phase") == "Running"
            and all(c["ready"] for c in p["status"].get("containerStatuses", []))
            and not p["metadata"].get("deletionTimestamp")]


def container_pid(node, container_id):
    """The host PID of a running container's first process (containerd's task list)."""
    cid = container_id.split("://", 1)[1]
    for line in node.ctr("tasks", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields[0] == cid:
            return int(fields[1])
    raise AssertionError(f"no running task {cid}")


def kubelet_probes(node):
    """The kubelet's own probe counters (its /metrics/probes, on the node's address)."""
    port = json.loads(node.kubectl("get", "node", "ig-node", "-o", "json").stdout)["status"]["daemonEndpoints"][
        "kubeletEndpoint"]["Port"]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://{NODE_IP}:{port}/metrics/probes", context=context, timeout=30) as r:
        return r.read().decode()


def node_port(node, namespace, service):
    """The Service's NodePort, once kube-proxy answers on it (its rules follow the Service by
    up to a sync period)."""
    svc = json.loads(node.kubectl("get", "service", service, "-n", namespace, "-o", "json").stdout)
    port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["name"] == "http")

    def answers():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False
    wait_until(f"kube-proxy serving NodePort {port}", answers, timeout=60)
    return port


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_install_runs_ready_confined_pods_that_serve_through_the_service(node, helm_env, which):
    namespace = f"install-{which}"
    with installed(node, helm_env, which, namespace, "--set", "service.type=NodePort") as seconds:
        print(f"{which}: helm install to every pod Ready: {seconds:.1f} s")

        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"
        running = pods(node, namespace, selector)
        assert len(running) == 2, [p["metadata"]["name"] for p in running]
        for pod in running:
            assert pod["status"]["phase"] == "Running"
            (status,) = pod["status"]["containerStatuses"]
            assert status["ready"] and status["restartCount"] == 0, status
            # What runc really runs: uid and gid 65532, no capability at all, a seccomp filter, no
            # privilege gain, a read-only root file system.
            pid = container_pid(node, status["containerID"])
            proc = proc_status(pid)
            assert proc["Uid"].split()[:2] == ["65532", "65532"] and proc["Gid"].split()[0] == "65532", proc
            assert int(proc["CapEff"], 16) == 0 and int(proc["CapPrm"], 16) == 0 and int(proc["CapBnd"], 16) == 0, proc
            assert proc["Seccomp"].strip() == "2" and proc["NoNewPrivs"].strip() == "1", proc
            assert "ro" in root_mount_options(pid)
            assert pathlib.Path(f"/proc/{pid}/exe").resolve().name == "image-gateway"

        # The kubelet probed them: startup, readiness and liveness answered on each pod.
        def probes():
            return [line for line in kubelet_probes(node).splitlines()
                    if line.startswith("prober_probe_total{") and f'namespace="{namespace}"' in line]

        def every_probe_answered():
            got = probes()
            return all(len([line for line in got if f'probe_type="{kind}"' in line and 'result="successful"' in line
                            and float(line.rsplit(" ", 1)[1]) >= 1]) == 2
                       for kind in ("Startup", "Liveness", "Readiness"))

        wait_until("each pod's startup, liveness and readiness probes answered", every_probe_answered, timeout=120)
        # (Readiness may fail before the first storage check and Secret read; liveness never.)
        assert not [line for line in probes() if 'probe_type="Liveness"' in line and 'result="failed"' in line
                    and not line.endswith(" 0")], probes()

        # Through the Service on 127.0.0.1 (kube-proxy's NodePort): store, fetch, a range.
        base = f"http://127.0.0.1:{node_port(node, namespace, RELEASE)}"
        png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
        status, _, body = http("POST", f"{base}/v1/image/upload", png, {"Content-Type": "image/png", "X-API-Key": API_KEY})
        assert status == 201, body
        name = json.loads(body)["object_name"]
        assert json.loads(body)["upload_url"] == f"http://{RELEASE}.{namespace}.svc/v1/image/download/{name}", \
            "no Ingress, no publicUrl: the Service's in-cluster URL"
        status, headers, got = http("GET", f"{base}/v1/image/download/{name}", headers={"X-API-Key": API_KEY})
        assert (status, got, headers["Content-Type"]) == (200, png, "image/png")
        status, headers, got = http("GET", f"{base}/v1/image/download/{name}",
                                    headers={"X-API-Key": API_KEY, "Range": "bytes=0-9"})
        assert (status, got, headers["Content-Range"]) == (206, png[:10], f"bytes 0-9/{len(png)}")
        assert node.mc("stat", f"local/images/{name}").returncode == 0, "stored in MinIO"

        # `helm test`: the chart's test pod (the image's `probe` command, restricted like the rest)
        # reaches /readyz through the Service by its cluster DNS name; with no pod behind the
        # Service it fails.
        tested = helm(node, helm_env, which, "test", RELEASE, "-n", namespace, "--timeout", "3m")
        assert "Phase:          Succeeded" in tested.stdout or "Phase: Succeeded" in tested.stdout, tested.stdout
        node.kubectl("scale", f"deployment/{RELEASE}", "-n", namespace, "--replicas=0")
        wait_until("no pod behind the Service", lambda: not pods(node, namespace, selector), timeout=120)
        failed = run(HELMS[which], "--kubeconfig", node.cluster.kubeconfig, "test", RELEASE, "-n", namespace,
                     "--timeout", "3m", env=helm_env, check=False)
        assert failed.returncode != 0 and "Failed" in failed.stdout + failed.stderr, failed
        # A failed test pod stays for its log, as Helm keeps it; the operator reads it and removes it.
        log = node.kubectl("logs", f"{RELEASE}-test", "-n", namespace).stdout
        assert f"http://{RELEASE}.{namespace}.svc/readyz" in log and ("cannot connect" in log or "no answer" in log), log
        node.kubectl("delete", "pod", f"{RELEASE}-test", "-n", namespace)

        helm(node, helm_env, which, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")
        wait_until("the release's pods gone", lambda: not pods(node, namespace, f"app.kubernetes.io/instance={RELEASE}"),
                   timeout=120)
        # Nothing of the release is left but the operator's Secrets (and what the namespace has anyway).
        left = set(node.kubectl("get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,"
                                "poddisruptionbudgets,horizontalpodautoscalers,ingresses,cronjobs,jobs",
                                "-n", namespace, "-o", "name").stdout.split())
        assert left == {"secret/minio-credentials", "secret/image-gateway-api-keys", "configmap/kube-root-ca.crt",
                        "serviceaccount/default"}, left
