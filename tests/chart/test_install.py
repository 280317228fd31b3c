"""`helm install` for real: the chart into a current kube-apiserver (with the controller-manager
making ReplicaSets, Pods and Jobs), in a namespace that enforces the restricted Pod Security
profile, with Helm 3 and Helm 4, default values and every option on."""

import base64
import json
import os
import subprocess
import urllib.request

import pytest
import yaml
from cluster import ALL_ON, CACHE, CHART, HELMS, REPO, apply_crds, free_port, gateway_bin, restricted_namespace, run, wait_until

# What the chart may create; `helm uninstall` must leave none of it behind.
KINDS = ("deployments,replicasets,pods,services,configmaps,serviceaccounts,roles,rolebindings,"
         "cronjobs,jobs,poddisruptionbudgets,horizontalpodautoscalers,networkpolicies,ingresses")
CRD_KINDS = "servicemonitors,prometheusrules,httproutes"


@pytest.fixture(scope="module")
def crds(cluster):
    apply_crds(cluster)


def secret(cluster, namespace, name, **data):
    args = [f"--from-literal={k.replace('_', '-')}={v}" for k, v in data.items()]
    cluster.kubectl("create", "secret", "generic", name, "-n", namespace, *args)


def helm(cluster, helm_env, which, *args):
    return run(HELMS[which], "--kubeconfig", cluster.kubeconfig, *args, env=helm_env)


def pods_of(cluster, namespace, selector):
    return cluster.get("pods", "-n", namespace, "-l", selector)["items"]


def release_objects(cluster, namespace, kinds):
    out = cluster.kubectl("get", kinds, "-n", namespace, "-l", "app.kubernetes.io/instance=ig",
                          "-o", "name").stdout.split()
    return out


@pytest.mark.parametrize("values", ["default", "all-on"])
@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_install_upgrade_uninstall_in_a_restricted_namespace(cluster, crds, helm_env, which, values):
    namespace = f"{which}-{values}"
    restricted_namespace(cluster, namespace)
    secret(cluster, namespace, "minio-credentials", root_user="minioadmin", root_password="minio-password-0123")
    secret(cluster, namespace, "image-gateway-api-keys", app="write:key-0123456789abcdef")
    files = ["-f", ALL_ON] if values == "all-on" else []
    if values == "all-on":
        secret(cluster, namespace, "image-gateway-url-signing", url_signing_key="k" * 32)

    installed = helm(cluster, helm_env, which, "install", "ig", CHART, "-n", namespace, *files)
    assert "STATUS: deployed" in installed.stdout, installed.stdout

    # Every object of the release was accepted by the server.
    manifest = helm(cluster, helm_env, which, "get", "manifest", "ig", "-n", namespace).stdout
    rendered = [d for d in yaml.safe_load_all(manifest) if d]
    assert len(rendered) >= 8, [d["kind"] for d in rendered]
    for doc in rendered:
        got = cluster.get(doc["kind"].lower(), doc["metadata"]["name"], "-n", namespace)
        assert got["metadata"]["name"] == doc["metadata"]["name"]

    # Admission let the Deployment's Pods be created (they stay Pending: no kubelet here).
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    want = deployment["spec"].get("replicas", 1)
    gateway_pods = wait_until("the Deployment's Pods", lambda: (
        p if len(p := pods_of(cluster, namespace, selector)) >= want else None))
    for pod in gateway_pods:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["spec"]["serviceAccountName"] == "ig-image-gateway"

    # The CronJob's Job, made by hand as an operator would, and its Pod.
    cronjob = next(d for d in rendered if d["kind"] == "CronJob")["metadata"]["name"]
    cluster.kubectl("create", "job", "retention-now", f"--from=cronjob/{cronjob}", "-n", namespace)
    job_pod = wait_until("the retention Job's Pod", lambda: (
        p if (p := pods_of(cluster, namespace, "job-name=retention-now")) else None))[0]
    assert job_pod["spec"]["containers"][0]["args"][0] == "retention"

    # A configuration change rolls the Deployment: a new pod template, a second ReplicaSet.
    before = cluster.get("deployment", deployment["metadata"]["name"], "-n", namespace)
    helm(cluster, helm_env, which, "upgrade", "ig", CHART, "-n", namespace, *files, "--set", "storage.timeout=20s")
    after = cluster.get("deployment", deployment["metadata"]["name"], "-n", namespace)
    assert before["spec"]["template"] != after["spec"]["template"], "the pod template changed"
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    wait_until("a second ReplicaSet for the new template", lambda: len(
        cluster.get("replicasets", "-n", namespace, "-l", selector)["items"]) >= 2)

    # Uninstall leaves nothing of ours (the garbage collector removes ReplicaSets, Pods and the Job).
    helm(cluster, helm_env, which, "uninstall", "ig", "-n", namespace, "--wait", "--timeout", "60s")
    kinds = KINDS + ("," + CRD_KINDS if values == "all-on" else "")
    wait_until("nothing of the release left", lambda: not release_objects(cluster, namespace, kinds), timeout=90)
    assert cluster.kubectl("get", "jobs", "-n", namespace, "-o", "name").stdout.strip() == ""
    assert helm(cluster, helm_env, which, "list", "-n", namespace, "-q").stdout.strip() == ""
    assert cluster.kubectl("get", "secrets", "-n", namespace, "-l", "owner=helm", "-o", "name").stdout.strip() == "", \
        "Helm's release records are gone too"
    left = cluster.kubectl("get", "secrets", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(left) == sorted(f"secret/{n}" for n in (
        ["minio-credentials", "image-gateway-api-keys"] + (["image-gateway-url-signing"] if values == "all-on" else []))), \
        f"only the Secrets the operator made remain: {left}"


def test_admission_is_real_a_root_pod_is_refused(cluster):
    restricted_namespace(cluster, "admission-check")
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "root", "namespace": "admission-check"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"runAsUser": 0}}]},
    }
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr and "restricted" in refused.stderr, refused.stderr
    assert cluster.kubectl("get", "pod", "root", "-n", "admission-check", check=False).returncode != 0


def minio_bin():
    path = os.environ.get("IG_MINIO_BIN") or str(CACHE / "minio" / "minio")
    assert os.path.isfile(path), f"{path} is missing: run `bash scripts/install-minio.sh`"
    return path


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def test_the_gateway_watches_its_secrets_as_the_charts_service_account(cluster, helm_env, tmp_path):
    """The chart's RBAC is exactly enough: the real gateway, authenticated with a token of the
    chart's ServiceAccount, reads the MinIO Secret (Bitnami's key names) and the API keys, serves
    a real MinIO, and picks up a rotated API key."""
    namespace = "gateway-as-sa"
    restricted_namespace(cluster, namespace)
    root_user, root_password = "minioadmin", "minio-password-0123"
    secret(cluster, namespace, "minio-credentials", root_user=root_user, root_password=root_password)
    secret(cluster, namespace, "image-gateway-api-keys", app="write:first-key-0123456789")
    helm(cluster, helm_env, "helm4", "install", "ig", CHART, "-n", namespace)
    token = cluster.kubectl("create", "token", "ig-image-gateway", "-n", namespace).stdout.strip()
    kubeconfig = cluster.write_kubeconfig("gateway", token, namespace=namespace)
    # The rendered configuration, as the pod would mount it.
    config = cluster.get("configmap", "ig-image-gateway", "-n", namespace)["data"]["gateway.toml"]
    (tmp_path / "gateway.toml").write_text(config)

    s3_port, api, admin = free_port(), free_port(), free_port()
    minio = subprocess.Popen(
        [minio_bin(), "server", str(tmp_path / "minio"), "--address", f"127.0.0.1:{s3_port}",
         "--console-address", f"127.0.0.1:{free_port()}", "--quiet"],
        env=dict(os.environ, MINIO_ROOT_USER=root_user, MINIO_ROOT_PASSWORD=root_password,
                 MINIO_BROWSER="off", HOME=str(tmp_path)),
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "minio.log", "w"))
    gateway = None
    try:
        wait_until("MinIO ready", lambda: http("GET", f"http://127.0.0.1:{s3_port}/minio/health/ready")[0] == 200)
        mc = os.path.join(os.path.dirname(minio_bin()), "mc")
        run(mc, "--config-dir", tmp_path / "mc", "mb", "local/images",
            env=dict(os.environ, MC_HOST_local=f"http://{root_user}:{root_password}@127.0.0.1:{s3_port}"))
        gateway = subprocess.Popen(
            [str(gateway_bin()), "serve", "--config", str(tmp_path / "gateway.toml")],
            env=dict(os.environ, KUBECONFIG=str(kubeconfig),
                     IMAGE_GATEWAY_LISTEN=f"127.0.0.1:{api}", IMAGE_GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{admin}",
                     IMAGE_GATEWAY_STORAGE__S3__ENDPOINT=f"http://127.0.0.1:{s3_port}"),
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gateway.log", "w"))
        def ready():
            return http("GET", f"http://127.0.0.1:{admin}/readyz")[0] == 200

        try:
            wait_until("the gateway ready (both Secrets read, MinIO reached)", ready, timeout=30)
        except AssertionError:
            raise AssertionError((tmp_path / "gateway.log").read_text()[-4000:]) from None

        png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
        upload = f"http://127.0.0.1:{api}/v1/image/upload"
        status, body = http("POST", upload, png, {"Content-Type": "image/png", "X-API-Key": "first-key-0123456789"})
        assert status == 201, body
        name = json.loads(body)["object_name"]
        status, got = http("GET", f"http://127.0.0.1:{api}/v1/image/download/{name}",
                           headers={"X-API-Key": "first-key-0123456789"})
        assert (status, got) == (200, png)

        # Rotation of the API keys through the Secret, no restart.
        patch = {"data": {"app": base64.b64encode(b"write:second-key-0123456789").decode()}}
        cluster.kubectl("patch", "secret", "image-gateway-api-keys", "-n", namespace, "-p", json.dumps(patch))
        wait_until("the rotated key accepted", lambda: http(
            "GET", f"http://127.0.0.1:{api}/v1/image/download/{name}",
            headers={"X-API-Key": "second-key-0123456789"})[0] == 200, timeout=30)
        assert http("GET", f"http://127.0.0.1:{api}/v1/image/download/{name}",
                    headers={"X-API-Key": "first-key-0123456789"})[0] == 401
        status, metrics = http("GET", f"http://127.0.0.1:{admin}/metrics")
        assert status == 200
        applied = [line for line in metrics.decode().splitlines() if line.startswith("k8s_secret_events_total{")
                   and 'outcome="applied"' in line and 'secret="storage"' in line]
        assert applied and applied[0].endswith(" 1"), applied
        assert root_password not in (tmp_path / "gateway.log").read_text(), "no secret in the log"
    finally:
        for proc in (gateway, minio):
            if proc:
                proc.kill()
                proc.wait()
        helm(cluster, helm_env, "helm4", "uninstall", "ig", "-n", namespace)


def test_plain_manifests_apply_with_kustomize_and_no_helm(cluster):
    """manifests/ (the chart's default render, Helm's ownership labels left out) and the example
    overlay apply with `kubectl apply -k` into a restricted namespace and make Pods."""
    overlay = REPO / "manifests" / "overlays" / "example"
    rendered = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", overlay).stdout) if d]
    for doc in rendered:
        labels = doc["metadata"].get("labels", {})
        assert "helm.sh/chart" not in labels and labels.get("app.kubernetes.io/managed-by") != "Helm", doc["kind"]
    restricted_namespace(cluster, "image-gateway")
    cluster.kubectl("apply", "-k", overlay)
    deployment = cluster.get("deployment", "image-gateway", "-n", "image-gateway")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IMAGE_GATEWAY_STORAGE__S3__ENDPOINT"] == "http://minio.minio.svc:9000"
    assert env["IMAGE_GATEWAY_CONFIG"] == "/etc/image-gateway/gateway.toml", "the overlay adds, keeps the rest"
    selector = "app.kubernetes.io/instance=image-gateway,app.kubernetes.io/component=server"
    wait_until("the Deployment's Pods", lambda: len(pods_of(cluster, "image-gateway", selector)) >= 2)
    cluster.kubectl("delete", "-k", overlay, "--wait=true")
    assert cluster.kubectl("get", "deployment", "-n", "image-gateway", "-o", "name").stdout.strip() == ""
