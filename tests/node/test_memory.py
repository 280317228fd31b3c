"""The chart's default memory limit holds the worst the defaults allow, on the node: the
kubelet's cgroup (v1) for the pod reports the peak."""

import json
import pathlib
import struct
import subprocess
import threading
import time
import zlib

from conftest import http
from test_install import API_KEY, RELEASE, installed, node_port, pods

NAMESPACE = "memory"
MAX_UPLOAD = 25 * 2**20  # upload.maxBytes, the chart's default
MAX_INPUT_PIXELS = 16_000_000  # processing.maxInputPixels, the chart's default


def png(width, height, pixels, level):
    """An RGB PNG of `pixels` (bytes, rows of width × 3), compressed at zlib `level`."""
    rows = b"".join(b"\0" + pixels[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, level)) + chunk(b"IEND", b""))


def noise_png(side, seed):
    """Random pixels, stored uncompressed: a PNG just under upload.maxBytes."""
    import random
    return png(side, side, random.Random(seed).randbytes(side * side * 3), 0)


def gradient_png(width, height):
    row = bytes(b for x in range(width) for b in (x * 255 // width, 128, 255 - x * 255 // width))
    return png(width, height, row * height, 6)


def pod_memory_cgroup(pod):
    """The pod's memory cgroup, where the kubelet (cgroupfs driver, cgroup root /ig-node) made it."""
    qos = pod["status"]["qosClass"].lower()
    base = pathlib.Path("/sys/fs/cgroup/memory/ig-node/kubepods")
    path = (base if qos == "guaranteed" else base / qos) / f"pod{pod['metadata']['uid']}"
    assert path.is_dir(), path
    return path


def test_default_limits_hold_the_largest_uploads_and_processing_job_admitted_at_once(node, helm_env, tmp_path):
    with installed(node, helm_env, "helm4", NAMESPACE, "--set", "service.type=NodePort", "--set", "replicaCount=1"):
        (pod,) = pods(node, NAMESPACE, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server")
        cgroup = pod_memory_cgroup(pod)
        limit = int((cgroup / "memory.limit_in_bytes").read_text())
        assert limit == 768 * 2**20, f"the chart's default limit: {limit}"
        base = f"http://127.0.0.1:{node_port(node, NAMESPACE, RELEASE)}"

        side = 2950  # 2950² × 3 bytes, stored: just under 25 MiB
        uploads = [noise_png(side, seed) for seed in range(4)]
        assert all(MAX_UPLOAD - 2**20 < len(u) <= MAX_UPLOAD for u in uploads), [len(u) for u in uploads]
        # A processing request takes one of the upload.maxConcurrent (4) places too: of four
        # uploads sent while a job on a source of processing.maxInputPixels runs, three are taken,
        # one gets 503 (the most the defaults admit at once, and their bounded refusal).
        status, _, body = http("POST", f"{base}/v1/image/upload", gradient_png(4000, MAX_INPUT_PIXELS // 4000),
                               {"Content-Type": "image/png", "X-API-Key": API_KEY})
        assert status == 201, body
        source = json.loads(body)["object_name"]
        answers = {}

        def send(key, url, body):
            answers[key] = http("POST", url, body, {"Content-Type": "image/png", "X-API-Key": API_KEY}, timeout=120)

        job = threading.Thread(target=send, args=("resize", f"{base}/v1/image/resize?width=2000&source={source}", None))
        job.start()
        time.sleep(0.2)
        def upload(key, body):
            # curl, as a client sending 25 MiB should: `Expect: 100-continue`, so a refusal that comes
            # before the body is read is received, not cut short by a reset while sending.
            path = tmp_path / f"upload-{key}.png"
            path.write_bytes(body)
            done = subprocess.run(["curl", "-s", "-o", "-", "-D", str(tmp_path / f"headers-{key}"), "-w", "\n%{http_code}",
                                   "-H", "Content-Type: image/png", "-H", f"X-API-Key: {API_KEY}",
                                   "--data-binary", f"@{path}", f"{base}/v1/image/upload"],
                                  capture_output=True, text=True, timeout=120)
            text, code = done.stdout.rsplit("\n", 1)
            headers = (tmp_path / f"headers-{key}").read_text().lower()
            answers[key] = (int(code), headers, text.encode())

        threads = [threading.Thread(target=upload, args=(i, u)) for i, u in enumerate(uploads)]
        for t in threads:
            t.start()
        for t in [job, *threads]:
            t.join()

        statuses = {k: (v[0], v[2][:200]) for k, v in answers.items()}
        assert statuses["resize"][0] == 201 and json.loads(answers["resize"][2])["width"] == 2000, statuses
        # The fourth upload is refused if it came while the job still held its place.
        assert sorted(answers[i][0] for i in range(4)) in ([201, 201, 201, 201], [201, 201, 201, 503]), statuses
        for refused in (answers[i] for i in range(4) if answers[i][0] == 503):
            assert "\nretry-after:" in refused[1], "the refusal says when to retry"
        peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
        oom = dict(line.split() for line in (cgroup / "memory.oom_control").read_text().splitlines())
        print(f"pod memory peak {peak / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit "
              f"(4 uploads of {len(uploads[0]) / 2**20:.1f} MiB and a {MAX_INPUT_PIXELS / 1e6:.0f} MP resize at once)")
        assert oom.get("oom_kill", "0") == "0", oom
        (after,) = pods(node, NAMESPACE, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=server")
        assert after["metadata"]["uid"] == pod["metadata"]["uid"]
        assert after["status"]["containerStatuses"][0]["restartCount"] == 0
        assert peak < limit
