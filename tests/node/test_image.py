"""The container image the Dockerfile builds (scripts/build-image.sh), run by podman as a user
with Docker would run it: non-root, read-only root, no shell, healthy."""

import json
import os
import pathlib
import subprocess

import pytest
from conftest import CONTAINERS_ENV, IMAGE, free_port, http, proc_status, root_mount_options, run, wait_until


def podman(*args, check=True):
    return run("podman", *args, env=CONTAINERS_ENV, check=check)


@pytest.fixture(scope="module")
def inspected():
    return json.loads(podman("image", "inspect", IMAGE).stdout)[0]


def test_image_runs_as_nonroot_with_the_gateway_as_entrypoint(inspected):
    config = inspected["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/local/bin/image-gateway"] and config["Cmd"] == ["serve"]
    assert sorted(config["ExposedPorts"]) == ["8080/tcp", "9090/tcp"]
    check = inspected["Healthcheck"]  # podman shows the image's HEALTHCHECK beside Config
    assert check["Test"][:3] == ["CMD", "/usr/local/bin/image-gateway", "probe"], check
    size_mib = inspected["Size"] / 2**20
    print(f"image {IMAGE}: {size_mib:.1f} MiB, {len(inspected['RootFS']['Layers'])} layers")
    assert size_mib < 100, "glibc, CA certificates and one static-ish binary"


def test_image_has_no_shell(inspected):
    for shell in ("/bin/sh", "/bin/bash", "/usr/bin/sh", "/bin/dash"):
        tried = podman("run", "--rm", "--network", "host", "--entrypoint", shell, IMAGE, "-c", "true", check=False)
        assert tried.returncode != 0, f"{shell} ran"
        assert "no such file or directory" in tried.stderr.lower() or "not found" in tried.stderr.lower(), tried.stderr


def test_container_answers_livez_read_only_as_65532_and_is_healthy(tmp_path):
    # The image's own ports (its HEALTHCHECK asks 9090), free in the tests' network namespace.
    api, admin = 8080, 9090
    name = f"ig-image-test-{free_port()}"
    # The fs backend needs a writable /data: a volume, as the chart mounts one. Everything else
    # is read-only.
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65532, 65532)
    podman("run", "-d", "--name", name, "--read-only", "--network", "host", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges", "-v", f"{data}:/data",
           "-e", "IMAGE_GATEWAY_AUTH__MODE=none", IMAGE)
    try:
        wait_until("/livez answers 200", lambda: http("GET", f"http://127.0.0.1:{admin}/livez")[0] == 200, timeout=60)
        assert http("GET", f"http://127.0.0.1:{admin}/readyz")[0] == 200
        # The Dockerfile's HEALTHCHECK (the binary's `probe`; no shell, no curl) passes.
        checked = podman("healthcheck", "run", name, check=False)
        assert checked.returncode == 0, checked
        health = json.loads(podman("inspect", name).stdout)[0]["State"]
        health = health.get("Health") or health.get("Healthcheck")
        assert health["Status"] == "healthy", health
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        status = proc_status(pid)
        assert status["Uid"].split()[:2] == ["65532", "65532"], status["Uid"]
        assert int(status["CapEff"], 16) == 0
        assert "ro" in root_mount_options(pid)
        # It serves: a PNG stored on the volume and fetched back.
        png = (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "sample.png").read_bytes()
        status_code, _, body = http("POST", f"http://127.0.0.1:{api}/v1/image/upload", png,
                                    {"Content-Type": "image/png"})
        assert status_code == 201, body
        got = http("GET", f"http://127.0.0.1:{api}/v1/image/download/{json.loads(body)['object_name']}")
        assert (got[0], got[2]) == (200, png)
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "-f", "-t", "5", name, check=False)
    assert "panicked" not in logs.stderr + logs.stdout


def test_image_binary_is_stripped_and_links_only_glibc_and_libgcc():
    mount = podman("image", "mount", IMAGE).stdout.strip()
    try:
        binary = pathlib.Path(mount) / "usr/local/bin/image-gateway"
        described = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True).stdout
        assert "stripped" in described and "not stripped" not in described, described
        needed = [line.split()[-1].strip("[]") for line in subprocess.run(
            ["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout.splitlines()
            if "(NEEDED)" in line]
        assert set(needed) <= {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2"}, needed
    finally:
        podman("image", "unmount", IMAGE, check=False)
