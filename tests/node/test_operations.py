"""What an operator does to a running release, under traffic, on the node: upgrades, restarts, a
lost pod, credential rotation; and the retention CronJob's run."""

import json
import time

import pytest
from conftest import CHART, MINIO_PASSWORD, REPO, helm, http, wait_until
from load import Load
from test_install import API_KEY, RELEASE, installed, node_port, pods, ready_pods

NAMESPACE = "operations"
RATE = 120  # requests per second, each phase
CONNECTIONS = 8  # the load's keep-alive connections
SERVER = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server"
# What these tests change from the chart's defaults, and why:
# - upload.maxConcurrent equals the load's connection count: the intake limit's deliberate 503
#   (tested in tests/it/upload.rs) cannot answer an upload here, however slow the machine; maxBytes
#   comes down so the memory the render checks still fits the default limit.
# - shutdown.grace (how long a terminating pod still accepts connections) covers the time the
#   endpoint's removal takes to reach kube-proxy on a loaded 2-core node (seen above 5 s, the
#   default, while other builds ran), so no connection lands on a closed listener.
RELEASE_VALUES = ("--set", "service.type=NodePort", "--set", f"upload.maxConcurrent={CONNECTIONS}",
                  "--set", "upload.maxBytes=8Mi", "--set", "shutdown.grace=15s")


@pytest.fixture(scope="module")
def release(node, helm_env):
    with installed(node, helm_env, "helm4", NAMESPACE, *RELEASE_VALUES):
        port = node_port(node, NAMESPACE, RELEASE)
        png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
        names = []
        for _ in range(4):
            status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", png,
                                   {"Content-Type": "image/png", "X-API-Key": API_KEY})
            assert status == 201, body
            names.append(json.loads(body)["object_name"])
        # Downloads and uploads, 4 to 1: every upload reaches MinIO, downloads may come from the cache.
        mix = [("GET", f"/v1/image/download/{n}", None, {"X-API-Key": API_KEY}, 200) for n in names]
        mix.append(("POST", "/v1/image/upload", png, {"Content-Type": "image/png", "X-API-Key": API_KEY}, 201))
        yield port, mix


def serving(node):
    return ready_pods(node, NAMESPACE, SERVER)


def phase(load, what, action, settle=3.0):
    """Runs `action` under the load; the tally of that phase (from its start to `settle` seconds
    after the action ended)."""
    load.snapshot()
    started = time.monotonic()
    action()
    time.sleep(settle)
    tally = load.snapshot()
    seconds = time.monotonic() - started
    print(f"{what}: {seconds:.1f} s, {tally.summary()}")
    return tally, seconds


def assert_clean(tally, seconds, what):
    assert not tally.failures and tally.resets == 0, f"{what}: {tally.summary()}: {tally.failures[:10]}"
    assert tally.requests >= 0.8 * RATE * seconds, f"{what}: the load kept its rate: {tally.summary()}"


def test_rollouts_under_load_lose_no_request(node, helm_env, release):
    port, mix = release
    before = {p["metadata"]["name"] for p in serving(node)}
    with Load(port, mix, rate=RATE, connections=CONNECTIONS, max_seconds=600) as load:
        time.sleep(2)
        upgraded = phase(load, "helm upgrade (pod template changed)", lambda: helm(
            node, helm_env, "helm4", "upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values",
            "--set", "podAnnotations.rollout=one", "--wait", "--timeout", "5m"))
        restarted = phase(load, "kubectl rollout restart", lambda: (
            node.kubectl("rollout", "restart", f"deployment/{RELEASE}", "-n", NAMESPACE),
            node.kubectl("rollout", "status", f"deployment/{RELEASE}", "-n", NAMESPACE, "--timeout=300s")))

        def delete_one_pod():
            victim = serving(node)[0]["metadata"]["name"]
            node.kubectl("delete", "pod", victim, "-n", NAMESPACE, "--wait=true", "--timeout=120s")
            wait_until("two Ready pods again", lambda: len(serving(node)) == 2, timeout=120)

        deleted = phase(load, "one pod deleted", delete_one_pod)
    for (tally, seconds), what in ((upgraded, "upgrade"), (restarted, "restart"), (deleted, "pod deleted")):
        assert_clean(tally, seconds, what)
    after = {p["metadata"]["name"] for p in serving(node)}
    assert not before & after, "every pod was replaced"
    for pod in pods(node, NAMESPACE, SERVER):
        assert all(c["restartCount"] == 0 for c in pod["status"]["containerStatuses"]), "no container restarted"


def set_storage_secret(node, user, password):
    patch = {"stringData": {"root-user": user, "root-password": password}}
    node.kubectl("patch", "secret", "minio-credentials", "-n", NAMESPACE, "-p", json.dumps(patch))


def storage_secret_applied(node):
    """Per running pod, how many versions of the storage Secret it has applied (its log)."""
    counts = {}
    for pod in serving(node):
        name = pod["metadata"]["name"]
        log = node.kubectl("logs", name, "-n", NAMESPACE).stdout
        counts[name] = sum(1 for line in log.splitlines()
                           if "applied a new version of the Secret" in line and "storage" in line)
    return counts


def test_storage_credentials_rotate_under_load_without_a_restart(node, release):
    """The zero-downtime order: a second MinIO key, the Secret switched to it, the first key
    removed once every pod uses the second; twice (root → one → two)."""
    port, mix = release
    restarts = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in serving(node)}
    with Load(port, mix, rate=RATE, connections=CONNECTIONS, max_seconds=600) as load:
        time.sleep(2)
        for step, (user, old) in enumerate((("gateway-one", None), ("gateway-two", "gateway-one"))):
            password = f"{user}-secret-0123456789"

            # Called within this iteration (phase runs it at once); the defaults bind this step's values.
            def rotate(user=user, password=password, old=old):
                node.mc("admin", "user", "add", "local", user, password)
                node.mc("admin", "policy", "attach", "local", "readwrite", "--user", user)
                before = storage_secret_applied(node)
                set_storage_secret(node, user, password)
                wait_until("every pod applied the new storage Secret", lambda: all(
                    n > before[p] for p, n in storage_secret_applied(node).items()), timeout=120)
                if old:
                    node.mc("admin", "user", "remove", "local", old)

            tally, seconds = phase(load, f"storage credentials rotated to {user}", rotate, settle=5.0)
            assert_clean(tally, seconds, f"rotation {step + 1}")
    after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in serving(node)}
    assert after == restarts, "no pod restarted, none replaced"
    assert MINIO_PASSWORD not in "".join(node.kubectl("logs", p, "-n", NAMESPACE).stdout for p in after), \
        "no credential in the logs"


def test_retention_job_deletes_exactly_the_objects_past_max_age(node, helm_env, release):
    """The chart's CronJob, run now as an operator would (`kubectl create job --from`), on the
    node against MinIO: objects older than maxAge go, newer ones stay; a second run deletes nothing."""
    port, _ = release
    png = (REPO / "tests" / "fixtures" / "sample.png").read_bytes()
    helm(node, helm_env, "helm4", "upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values",
         "--set", "retention.maxAge=40s", "--wait", "--timeout", "5m")

    def upload():
        status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/image/upload", png,
                               {"Content-Type": "image/png", "X-API-Key": API_KEY})
        assert status == 201, body
        return json.loads(body)["object_name"]

    time.sleep(41)  # everything stored so far (by the other tests too) is now past maxAge
    fresh = [upload() for _ in range(3)]
    def stored():
        return {line.split()[-1] for line in node.mc("ls", "local/images/").stdout.splitlines()}

    old = stored() - set(fresh)
    assert old, "objects older than maxAge exist"

    def run_job(name):
        node.kubectl("create", "job", name, f"--from=cronjob/{RELEASE}-retention", "-n", NAMESPACE)
        node.kubectl("wait", "--for=condition=Complete", f"job/{name}", "-n", NAMESPACE, "--timeout=180s")
        return node.kubectl("logs", f"job/{name}", "-n", NAMESPACE).stdout

    first = run_job("retention-first")
    assert stored() == set(fresh), f"exactly the old objects deleted:\n{first}"
    second = run_job("retention-second")
    assert stored() == set(fresh), f"a second run deletes nothing:\n{second}"
    print(f"retention: first run deleted {len(old)} of {len(old) + len(fresh)} objects")
