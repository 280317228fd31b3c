"""A real single-node Kubernetes cluster for the node tests, started once per run.

`tests/node/run.sh` starts pytest inside network, mount and PID namespaces of its own; everything
here lives in them: the control plane of the chart tests (`tests/chart/cluster.py`) serving the
node's address too, containerd + runc with the CNI bridge, the kubelet (cgroupfs driver, cgroup
v1), kube-scheduler, kube-proxy (iptables), CoreDNS and MinIO as processes. The images come from
the cache: the gateway's (scripts/build-image.sh, through buildah's storage) and the pod sandbox
(scripts/install-node.sh), imported into containerd without a registry.

Addresses (no private range): pods 198.18.0.0/24 on the bridge, Services 198.19.0.0/24, the
node 198.19.255.1 (on the namespace's loopback). The tests reach the cluster through 127.0.0.1: the API
server, and NodePorts, which kube-proxy answers on loopback.
"""

import base64
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "chart"))
from cluster import (  # noqa: E402
    CACHE,
    CHART,
    HELMS,
    KUBE,
    REPO,
    Cluster,
    apply_crds,
    cached,
    free_port,
    helm_env_in,
    restricted_namespace,  # noqa: F401 - unused here: re-exported for test_install.py, which takes its helpers from conftest
    run,
    wait_until,
)

NODE = cached("IG_NODE_DIR", "node", "install-node.sh")
KEDA = cached("IG_KEDA_DIR", "keda", "install-keda.sh")
NODE_IP = "198.19.255.1"
POD_RANGE = "198.18.0.0/24"
NODE_NAME = "ig-node"
IMAGE = os.environ.get("IG_IMAGE", "localhost/image-gateway:dev")
MINIO_USER, MINIO_PASSWORD = "minioadmin", "minio-password-0123"


def minio_bin():
    return cached("IG_MINIO_BIN", "minio/minio", "install-minio.sh")


# buildah's and podman's storage: the one scripts/containers-env.sh set up in the cache.
CONTAINERS_ENV = dict(os.environ, CONTAINERS_STORAGE_CONF=str(CACHE / "containers" / "storage.conf"))


def proc_status(pid):
    """A process's /proc status fields (Uid, CapEff, Seccomp, ...), as the kernel reports them."""
    return dict(line.split(":\t", 1) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                if ":\t" in line)


def root_mount_options(pid):
    """The options of the root mount a process sees (`ro` for a read-only root file system)."""
    for line in pathlib.Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError("no root mount")


def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers (case-insensitive), body) of one request; (None, {}, the error) when no
    answer came."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except OSError as e:
        return None, {}, repr(e).encode()


class Node:
    """The cluster and its one node; `start` brings it up, `stop` ends every process."""

    def __init__(self, base):
        self.dir = pathlib.Path(base)
        self.procs = []
        self.sock = self.dir / "containerd.sock"

    def _start(self, name, *args, env=None):
        log = open(self.dir / f"{name}.log", "w")
        self.procs.append((name, subprocess.Popen([str(a) for a in args], stdout=log, stderr=subprocess.STDOUT,
                                                  env=env)))

    def logs(self, names=None):
        out = [self.cluster.logs()] if names is None else []
        for name, _ in self.procs:
            if names is None or name in names:
                out.append(f"== {name}\n{(self.dir / f'{name}.log').read_text()[-4000:]}")
        return "\n".join(out)

    def start(self):
        self._network()
        self.cluster = Cluster(self.dir / "control-plane", bind="0.0.0.0", advertise=NODE_IP)
        self.kubectl = self.cluster.kubectl
        self._containerd()
        self._import(NODE / "pause.tar")
        self._import_gateway_image()
        self._kubelet()
        self._start("kube-scheduler", KUBE / "kube-scheduler", f"--kubeconfig={self.cluster.kubeconfig}",
                    f"--authentication-kubeconfig={self.cluster.kubeconfig}",
                    f"--authorization-kubeconfig={self.cluster.kubeconfig}",
                    "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false")
        self._start("kube-proxy", KUBE / "kube-proxy", f"--kubeconfig={self.cluster.kubeconfig}",
                    f"--hostname-override={NODE_NAME}", "--proxy-mode=iptables", f"--cluster-cidr={POD_RANGE}",
                    "--nodeport-addresses=127.0.0.0/8,198.19.255.1/32", "--conntrack-max-per-core=0",
                    f"--metrics-bind-address=127.0.0.1:{free_port()}",
                    f"--healthz-bind-address=127.0.0.1:{free_port()}")
        self._coredns()
        self._minio()
        wait_until("the node Ready", self._node_ready, timeout=180)
        self._metrics_server()

    def _network(self):
        # The node's address on loopback (no dummy interface in this kernel): local, so the pods
        # reach it through the bridge's gateway.
        run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        pathlib.Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        pathlib.Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")

    def _containerd(self):
        cni = self.dir / "cni"
        cni.mkdir()
        (cni / "10-ig.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "ig-pods",
            "plugins": [
                {"type": "bridge", "bridge": "ig-cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.dir / "cni-ipam"),
                          "ranges": [[{"subnet": POD_RANGE, "gateway": "198.18.0.1"}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }))
        config = self.dir / "containerd.toml"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config.write_text(f"""version = 2
root = "{self.dir / 'containerd-root'}"
state = "{self.dir / 'containerd-state'}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[{cri}]
  sandbox_image = "localhost/pause:test"
  enable_selinux = false
  # This machine's root lacks CAP_SYS_RESOURCE: no score below containerd's own (0).
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni}"
""")
        self._start("containerd", "containerd", "--config", config)
        wait_until("containerd", lambda: self.ctr("version", check=False).returncode == 0, timeout=60)

    def ctr(self, *args, check=True):
        return run("ctr", "--address", self.sock, "--namespace", "k8s.io", *args, check=check)

    def _import(self, archive):
        self.ctr("images", "import", "--all-platforms", archive)

    def _import_gateway_image(self):
        archive = self.dir / "gateway.tar"
        run("podman", "save", "--quiet", "--format", "docker-archive", "-o", archive, IMAGE, env=CONTAINERS_ENV)
        self._import(archive)
        archive.unlink()

    def _kubelet(self):
        kubelet = self.dir / "kubelet"
        kubelet.mkdir()
        # The kubelet's cgroup root must exist in every hierarchy (run.sh removes it afterwards).
        for hierarchy in pathlib.Path("/sys/fs/cgroup").iterdir():
            if hierarchy.is_dir() and hierarchy.name != "unified":
                (hierarchy / "ig-node").mkdir(exist_ok=True)
        (self.dir / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": "/ig-node",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "address": NODE_IP, "port": free_port(), "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": free_port(),
            "clusterDNS": [NODE_IP], "clusterDomain": "cluster.local",
            "resolvConf": str(self.dir / "resolv.conf"),
            "failSwapOn": False,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(self.dir / "pod-logs"),
            "serializeImagePulls": False,
            "syncFrequency": "5s", "fileCheckFrequency": "5s",
        }
        (self.dir / "kubelet.yaml").write_text(yaml.safe_dump(config))
        self._start("kubelet", KUBE / "kubelet", f"--config={self.dir / 'kubelet.yaml'}",
                    f"--kubeconfig={self.cluster.kubeconfig}", f"--root-dir={kubelet}",
                    f"--cert-dir={self.dir / 'kubelet-pki'}", f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_IP}")

    def _coredns(self):
        (self.dir / "Corefile").write_text(f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.cluster.kubeconfig} test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")
        self._start("coredns", NODE / "coredns", "-conf", self.dir / "Corefile")

    def _minio(self):
        """MinIO as a process on the node's address; the pods reach it through a Service without a
        selector (`minio.minio.svc`), as they would an in-cluster MinIO."""
        self.minio_port = free_port()
        self._start("minio", minio_bin(), "server", self.dir / "minio", "--address", f"{NODE_IP}:{self.minio_port}",
                    "--console-address", f"127.0.0.1:{free_port()}", "--quiet",
                    env=dict(os.environ, MINIO_ROOT_USER=MINIO_USER, MINIO_ROOT_PASSWORD=MINIO_PASSWORD,
                             MINIO_BROWSER="off", HOME=str(self.dir)))
        wait_until("MinIO ready", lambda: http(
            "GET", f"http://{NODE_IP}:{self.minio_port}/minio/health/ready")[0] == 200, timeout=60)
        self.mc("mb", "local/images")
        self.kubectl("create", "namespace", "minio")
        self._service_to_node("minio", "minio", 9000, self.minio_port)

    def _service_to_node(self, namespace, name, port, node_port):
        """A Service without a selector sending `port` to a process on the node's address: its
        Endpoints (which the controller-manager mirrors into an EndpointSlice for kube-proxy)."""
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"ports": [{"name": "main", "port": port, "targetPort": node_port}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
             "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"name": "main", "port": node_port}]}]},
        ]}))

    def _metrics_server(self):
        """metrics-server as a process, registered as the `metrics.k8s.io` API (the aggregation
        layer): it scrapes the kubelet's resource metrics; the HPA and `kubectl top` read them."""
        port = free_port()
        self._start("metrics-server", NODE / "metrics-server", f"--bind-address={NODE_IP}", f"--secure-port={port}",
                    f"--cert-dir={self.dir / 'metrics-server'}", f"--kubeconfig={self.cluster.kubeconfig}",
                    f"--authentication-kubeconfig={self.cluster.kubeconfig}",
                    f"--authorization-kubeconfig={self.cluster.kubeconfig}",
                    "--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP",
                    "--kubelet-use-node-status-port", "--metric-resolution=15s")
        self._service_to_node("kube-system", "metrics-server", 443, port)
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                     "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                     "groupPriorityMinimum": 100, "versionPriority": 100}}))

    def mc(self, *args):
        mc = minio_bin().parent / "mc"
        return run(mc, "--config-dir", self.dir / "mc", *args, env=dict(
            os.environ, MC_HOST_local=f"http://{MINIO_USER}:{MINIO_PASSWORD}@{NODE_IP}:{self.minio_port}"))

    def _node_ready(self):
        got = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if got.returncode != 0:
            return False
        conditions = json.loads(got.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self):
        for _, proc in reversed(self.procs):
            proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.cluster.stop()


class Traefik:
    """Traefik (scripts/install-node.sh) as an ingress controller and Gateway API implementation:
    a process in the node's network namespace reading Ingresses, Gateways and HTTPRoutes through
    the API server, listening on 127.0.0.1:`port` only (its entry point `web`)."""

    def __init__(self, node, base):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        api = {"endpoint": f"https://{NODE_IP}:{node.cluster.port}", "token": node.cluster.ADMIN_TOKEN,
               "certAuthFilePath": node.cluster.dir / "certs" / "apiserver.crt"}
        providers = [f"--providers.{provider}.{key}={value}" for provider in ("kubernetesIngress", "kubernetesGateway")
                     for key, value in api.items()]
        self.log = open(base / "traefik.log", "w")
        self.proc = subprocess.Popen([NODE / "traefik", f"--entryPoints.web.address=127.0.0.1:{self.port}",
                                      "--providers.kubernetesIngress=true", "--providers.kubernetesGateway=true",
                                      *providers, "--log.level=INFO"], stdout=self.log, stderr=subprocess.STDOUT)

    def wait_routes(self, host):
        """Until a request for `host` reaches the gateway (Traefik answers 404 before it has read
        the route and its Service's endpoints)."""
        wait_until(f"Traefik routing {host}", lambda: http("GET", f"{self.url}/livez", headers={"Host": host})[0] == 200,
                   timeout=120)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def label_name(key):
    """A Kubernetes label key as Prometheus' discovery names it (`app.kubernetes.io/x` →
    `app_kubernetes_io_x`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def scrape_config(monitor, api_server, token):
    """The scrape configuration prometheus-operator generates for a ServiceMonitor (one endpoint)."""
    namespace, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    (endpoint,) = monitor["spec"]["endpoints"]
    keep = [{"action": "keep", "source_labels": [f"__meta_kubernetes_service_label_{label_name(k)}"], "regex": v}
            for k, v in monitor["spec"]["selector"]["matchLabels"].items()]
    keep.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                 "regex": endpoint["port"]})
    target_labels = [{"source_labels": [f"__meta_kubernetes_{meta}"], "target_label": label}
                     for meta, label in (("namespace", "namespace"), ("service_name", "service"),
                                         ("pod_name", "pod"), ("pod_container_name", "container"),
                                         ("service_name", "job"))]
    target_labels.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    return {
        "job_name": f"serviceMonitor/{namespace}/{name}/0",
        "scrape_interval": endpoint["interval"],
        "metrics_path": endpoint["path"],
        "kubernetes_sd_configs": [{
            "role": "endpoints", "api_server": api_server, "namespaces": {"names": [namespace]},
            "tls_config": {"insecure_skip_verify": True}, "authorization": {"credentials": token}}],
        "relabel_configs": keep + target_labels,
    }


class Prometheus:
    """A Prometheus process in the node's network namespace (it reaches the pods' addresses):
    the one scripts/install-node.sh builds with Kubernetes discovery."""

    def __init__(self, base, config, rules=None, port=None):
        base.mkdir(parents=True, exist_ok=True)
        if rules:
            (base / "rules.yaml").write_text(yaml.safe_dump(rules))
            config = dict(config, rule_files=[str(base / "rules.yaml")])
        (base / "prometheus.yaml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{port or free_port()}"
        self.log = open(base / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [NODE / "prometheus", f"--config.file={base / 'prometheus.yaml'}", f"--storage.tsdb.path={base / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until("Prometheus ready", lambda: http("GET", f"{self.url}/-/ready")[0] == 200, timeout=60)

    def api(self, path, **params):
        status, _, body = http("GET", f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, body
        return json.loads(body)["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Keda:
    """KEDA (scripts/install-keda.sh) as two processes in the node's network namespace, as its
    own manifests deploy it: the operator (ScaledObjects: it makes their HPAs and queries their
    scalers, Prometheus here) and the metrics adapter, registered as the `external.metrics.k8s.io`
    API (the aggregation layer), which asks the operator over mutual TLS (gRPC) for the values
    the HPA reads. One CA and one certificate for both, made here as KEDA's cert rotation would."""

    def __init__(self, node, base):
        self.node, self.dir = node, base
        certs = base / "certs"
        certs.mkdir()
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=keda-ca",
            "-keyout", certs / "ca.key", "-out", certs / "ca.crt")
        (certs / "san.cnf").write_text(
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName=IP:127.0.0.1,IP:{NODE_IP},DNS:keda-operator.keda.svc,DNS:keda-metrics-apiserver.keda.svc\n")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=keda", "-keyout", certs / "tls.key",
            "-out", certs / "tls.csr")
        run("openssl", "x509", "-req", "-days", "2", "-in", certs / "tls.csr", "-CA", certs / "ca.crt",
            "-CAkey", certs / "ca.key", "-CAcreateserial", "-extfile", certs / "san.cnf", "-out", certs / "tls.crt")
        node.kubectl("create", "namespace", "keda")
        kubeconfig = node.cluster.kubeconfig
        env = dict(os.environ, WATCH_NAMESPACE="", POD_NAMESPACE="keda", KEDA_CLUSTER_OBJECT_NAMESPACE="keda")
        grpc = f"127.0.0.1:{free_port()}"
        self.procs = []
        self._start("keda-operator", f"--kubeconfig={kubeconfig}", "--leader-elect=false", f"--cert-dir={certs}",
                    f"--metrics-service-bind-address={grpc}", f"--metrics-bind-address=127.0.0.1:{free_port()}",
                    f"--health-probe-bind-address=127.0.0.1:{free_port()}", "--zap-log-level=info", env=env)
        port = free_port()
        self._start("keda-adapter", f"--kubeconfig={kubeconfig}", f"--lister-kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={NODE_IP}", f"--secure-port={port}",
                    f"--cert-dir={certs}", f"--tls-cert-file={certs / 'tls.crt'}",
                    f"--tls-private-key-file={certs / 'tls.key'}", f"--metrics-service-address={grpc}",
                    f"--port={free_port()}", "--zap-log-level=info", env=env)
        node._service_to_node("keda", "keda-metrics-apiserver", 443, port)
        node.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
            "spec": {"service": {"name": "keda-metrics-apiserver", "namespace": "keda", "port": 443},
                     "group": "external.metrics.k8s.io", "version": "v1beta1",
                     "caBundle": base64.b64encode((certs / "ca.crt").read_bytes()).decode(),
                     "groupPriorityMinimum": 100, "versionPriority": 100}}))
        try:
            wait_until("the external metrics API served by KEDA's adapter", lambda: node.kubectl(
                "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1", check=False).returncode == 0, timeout=120)
        except AssertionError:
            print(self.logs(), file=sys.stderr)
            self.stop()
            raise

    def _start(self, name, *args, env):
        log = open(self.dir / f"{name}.log", "w")
        self.procs.append((log, subprocess.Popen([str(KEDA / name), *map(str, args)], stdout=log,
                                                 stderr=subprocess.STDOUT, env=env)))

    def logs(self):
        return "\n".join(f"== {name}\n{(self.dir / f'{name}.log').read_text()[-4000:]}"
                         for name in ("keda-operator", "keda-adapter"))

    def stop(self):
        for log, proc in self.procs:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


@pytest.fixture(scope="session")
def node():
    base = tempfile.mkdtemp(prefix="ig-node-")
    n = Node(base)
    started = time.monotonic()
    try:
        n.start()
    except BaseException:
        print(n.logs() if hasattr(n, "cluster") else "", file=sys.stderr)
        raise
    print(f"node ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    yield n
    n.stop()
    shutil.rmtree(base, ignore_errors=True)


def pods_by_namespace(node):
    listed = json.loads(node.kubectl("get", "pods", "--all-namespaces", "-o", "json").stdout)["items"]
    found = {}
    for pod in listed:
        found.setdefault(pod["metadata"]["namespace"], []).append(pod["metadata"]["name"])
    return found


@pytest.fixture(scope="session")
def infrastructure_namespaces(node):
    """The namespaces with pods before any test installed anything (MinIO, CoreDNS, …)."""
    return set(pods_by_namespace(node))


@pytest.fixture(scope="module", autouse=True)
def module_leaves_the_node_empty(request):
    """After each test file using the node: no pod of its left (waiting for terminating ones). The
    one node has 2 CPUs; pods a test leaves behind hold their CPU requests and make the next file's
    pods unschedulable, failing tests that did nothing wrong. A leak fails the file that leaked,
    and its namespaces are deleted so the rest of the run still has the node."""
    if not any("node" in item.fixturenames for item in request.session.items if item.module is request.module):
        yield
        return
    node = request.getfixturevalue("node")
    infrastructure_namespaces = request.getfixturevalue("infrastructure_namespaces")
    yield

    def left():
        return {ns: names for ns, names in pods_by_namespace(node).items() if ns not in infrastructure_namespaces}
    try:
        wait_until("the test file's pods gone", lambda: not left(), timeout=180)
    except AssertionError as e:
        leaked = left()
        for namespace in leaked:
            node.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=180s", check=False)
        raise AssertionError(f"pods left on the node after the test file: {leaked}") from e


@pytest.fixture(scope="session")
def traefik(node, tmp_path_factory):
    """Traefik with the cluster's IngressClass `traefik`, GatewayClass `traefik` and a shared
    Gateway `gateways/public` whose listener `web` is Traefik's entry point."""
    apply_crds(node.cluster)
    t = Traefik(node, tmp_path_factory.mktemp("traefik"))
    node.kubectl("create", "namespace", "gateways")
    node.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "traefik"},
         "spec": {"controller": "traefik.io/ingress-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "traefik"},
         "spec": {"controllerName": "traefik.io/gateway-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": "public", "namespace": "gateways"},
         "spec": {"gatewayClassName": "traefik",
                  "listeners": [{"name": "web", "protocol": "HTTP", "port": t.port,
                                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    ]}))
    yield t
    t.stop()


@pytest.fixture(scope="session")
def keda(node, tmp_path_factory):
    """KEDA's operator and metrics adapter, with its CRDs (and the chart's others)."""
    apply_crds(node.cluster)
    k = Keda(node, tmp_path_factory.mktemp("keda"))
    yield k
    k.stop()


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory):
    """Helm's own folders, kept out of $HOME."""
    return helm_env_in(tmp_path_factory.mktemp("helm"))


def helm(node, helm_env, which, *args):
    return run(HELMS[which], "--kubeconfig", node.cluster.kubeconfig, *args, env=helm_env)


__all__ = ["CHART", "REPO", "helm", "http", "wait_until"]
