"""The chart tests' and node tests' shared pieces: the cached tools, commands, waits and a real
Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on chosen addresses.

The tools come from the cache that `scripts/install-chart-tools.sh` and `scripts/install-kube.sh`
fill (the README's test command, `scripts/test.sh`, runs both and exports their paths).
"""

import os
import pathlib
import secrets
import socket
import subprocess
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "image-gateway"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
CACHE = pathlib.Path(os.environ.get("IG_CACHE", pathlib.Path.home() / ".cache" / "image-gateway"))


def cached(env, default, install):
    """A tool's path from `env`, else its place in the cache; fails naming the install step."""
    path = pathlib.Path(os.environ.get(env) or CACHE / default)
    assert path.exists(), f"{path} is missing: run `bash scripts/{install}` (scripts/test.sh does) or set {env}"
    return path


TOOLS = cached("IG_CHART_TOOLS", "chart-tools", "install-chart-tools.sh")
KUBE = cached("IG_KUBE_BIN_DIR", "kube", "install-kube.sh")
HELMS = {name: TOOLS / name / "helm" for name in ("helm3", "helm4")}


def gateway_bin():
    """The debug build of the gateway (scripts/build-debug.sh; scripts/test.sh builds it before the
    chart tests)."""
    path = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target")) / "debug" / "image-gateway"
    assert path.is_file(), f"{path} is missing: run `bash scripts/build-debug.sh` (scripts/test.sh does)"
    return path


def run(*args, env=None, check=True, input=None):
    """Runs a command; on failure the assertion shows its output."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, input=input)
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, probe, timeout=60.0, every=0.2):
    """Polls `probe` until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout}s: {what}"
        time.sleep(every)


class Cluster:
    """etcd, kube-apiserver and kube-controller-manager: RBAC, service-account tokens, the default
    admission plugins (Pod Security among them). Alone (the chart tests), on loopback, with no
    scheduler and no kubelet: Pods are created and stay Pending. The node tests run it inside their
    network namespace, serving on `advertise` too, with a node beside it.

    Service addresses come from 198.19.0.0/24 (198.18.0.0/15 is reserved for benchmarking; no
    private range is used)."""

    ADMIN_TOKEN = "admin-" + secrets.token_hex(16)
    SERVICE_RANGE = "198.19.0.0/24"

    def __init__(self, base, bind="127.0.0.1", advertise="127.0.0.1"):
        self.dir = pathlib.Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs = []
        etcd_client, etcd_peer, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._start("etcd", KUBE / "etcd",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}")
        run("openssl", "genrsa", "-out", self.dir / "sa.key", "2048")
        run("openssl", "rsa", "-pubout", "-in", self.dir / "sa.key", "-out", self.dir / "sa.pub")
        (self.dir / "tokens.csv").write_text(f"{self.ADMIN_TOKEN},admin,admin-uid,system:masters\n")
        front_proxy = self._front_proxy_certs()
        self._start("kube-apiserver", KUBE / "kube-apiserver",
                    f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                    f"--bind-address={bind}", f"--advertise-address={advertise}",
                    f"--secure-port={self.port}", f"--cert-dir={self.dir / 'certs'}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={self.dir / 'sa.pub'}",
                    f"--service-account-signing-key-file={self.dir / 'sa.key'}",
                    "--api-audiences=https://kubernetes.default.svc",
                    f"--token-auth-file={self.dir / 'tokens.csv'}",
                    "--authorization-mode=RBAC", f"--service-cluster-ip-range={self.SERVICE_RANGE}",
                    # Logs and exec reach a kubelet by its address (node names resolve nowhere here).
                    "--kubelet-preferred-address-types=InternalIP",
                    # The aggregation layer (the node tests' metrics-server), as kubeadm sets it up.
                    *front_proxy)
        self.kubeconfig = self.write_kubeconfig("admin", self.ADMIN_TOKEN)
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        wait_until("kube-apiserver /readyz", lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                   timeout=90)
        cm_port = free_port()
        self._start("kube-controller-manager", KUBE / "kube-controller-manager",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1", f"--secure-port={cm_port}",
                    f"--cert-dir={self.dir / 'cm-certs'}",
                    "--leader-elect=false",
                    f"--service-account-private-key-file={self.dir / 'sa.key'}",
                    f"--root-ca-file={self.dir / 'certs' / 'apiserver.crt'}",
                    "--controllers=*")
        # The controller-manager is working once it has made the default ServiceAccount.
        wait_until("the controller-manager makes the default ServiceAccount",
                   lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
                   timeout=90)

    def _front_proxy_certs(self):
        """A CA and the client certificate the API server presents to aggregated API servers,
        which trust the user it names in the request headers; the flags that use them."""
        d = self.dir
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=front-proxy-ca",
            "-keyout", d / "front-proxy-ca.key", "-out", d / "front-proxy-ca.crt")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=front-proxy-client",
            "-keyout", d / "front-proxy-client.key", "-out", d / "front-proxy-client.csr")
        run("openssl", "x509", "-req", "-days", "2", "-in", d / "front-proxy-client.csr", "-CA", d / "front-proxy-ca.crt",
            "-CAkey", d / "front-proxy-ca.key", "-CAcreateserial", "-out", d / "front-proxy-client.crt")
        return (f"--requestheader-client-ca-file={d / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={d / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={d / 'front-proxy-client.key'}",
                # To the aggregated server's endpoint itself, not its Service address (this
                # network namespace has no route a Service address could take).
                "--enable-aggregator-routing=true")

    def _start(self, name, binary, *args):
        log = open(self.dir / f"{name}.log", "w")
        self.procs.append((name, subprocess.Popen([str(binary), *map(str, args)], stdout=log, stderr=subprocess.STDOUT)))

    def write_kubeconfig(self, user, token, namespace="default"):
        path = self.dir / f"kubeconfig-{user}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user, "namespace": namespace}}],
            "current-context": "test",
        }))
        path.chmod(0o600)
        return path

    def kubectl(self, *args, check=True, input=None):
        return run(KUBE / "kubectl", "--kubeconfig", self.kubeconfig, *args, check=check, input=input)

    def get(self, *args):
        return yaml.safe_load(self.kubectl("get", "-o", "yaml", *args).stdout)

    def logs(self):
        return "\n".join(f"== {name}\n{(self.dir / f'{name}.log').read_text()[-3000:]}" for name, _ in self.procs)

    def stop(self):
        for _, proc in reversed(self.procs):
            proc.kill()
            proc.wait()


def helm_env_in(home):
    """The environment with Helm's own folders under `home`, kept out of $HOME."""
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(home / var.lower())
    return env


def restricted_namespace(cluster, name):
    """A namespace enforcing the restricted Pod Security level, once its default ServiceAccount
    (made by the controller-manager, needed by every Pod) exists. `cluster` has `kubectl`."""
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    wait_until(f"default ServiceAccount in {name}",
               lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0)


def apply_crds(cluster):
    """The CRDs the chart's options need (prometheus-operator's ServiceMonitor and
    PrometheusRule, the Gateway API's; scripts/install-chart-tools.sh caches them; KEDA's,
    scripts/install-keda.sh), applied and Established."""
    crds = sorted((TOOLS / "crds").glob("*.yaml"))
    assert crds, "the CRDs are missing: run `bash scripts/install-chart-tools.sh`"
    crds += sorted((cached("IG_KEDA_DIR", "keda", "install-keda.sh") / "crds").glob("*.yaml"))
    for crd in crds:
        cluster.kubectl("apply", "--server-side", "-f", crd)
    for crd in crds:
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
