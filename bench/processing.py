#!/usr/bin/env python3
"""Processing benchmark: the workload of imgproxy's published image-server benchmark.

Real photographs (the JPEGs of Debian's mate-backgrounds, 1-4K px wide) shrunk to fit 512x512
and encoded as JPEG quality 80 (or, with --format webp, WebP quality 75: the published
benchmark's two settings; with --format avif, AVIF quality 63 at speed 9: imgproxy's
IMGPROXY_AVIF_SPEED, libaom's scale, and the gateway's processing.avif_speed, rav1e's), served
on loopback by:
  imgproxy  imgproxy v3 (Go + libvips), built by scripts/install-imgproxy.sh; its defaults except
            IMGPROXY_BIND and IMGPROXY_LOCAL_FILESYSTEM_ROOT (no key/salt: signatures unchecked)
  imgproxy4 the same for imgproxy v4 (IMGPROXY_VERSION=v4.0.12 scripts/install-imgproxy.sh):
            same URLs, same settings
  thumbor   thumbor (Python, Pillow), scripts/install-thumbor.sh; file loader, no storage nor
            result storage, QUALITY=80, 2 processes (one per core; see class Thumbor for how)
  vips      bench/vips_server.py: pyvips over the same Debian libvips, the floor for libvips
  gateway   this repo's release binary on its fs backend, POST /v1/image/resize?source=…, or with
            --gateway-route variant the variant at the download URL,
            GET /v1/image/download/…?w=512&h=512&fit=inside&q=…&format=…, with the variant
            cache off (variants.cache_max_bytes = 0) so that every request renders
and one client for all, wrk (see the note at WRK_LUA). For each server and each concurrency,
a fresh server process gets a warm-up run, then a measured run cycling over every image; the
server's process tree is sampled from /proc for CPU time and peak RSS. Before any load each
server's answer for every image is fetched once and checked: 200, a JPEG, fitting 512x512
with its long side 512; and scored (scripts/image_quality.py: SSIM and PSNR) against the same
image decoded whole and resampled by Pillow's Lanczos3 to the answer's size, so that a speed
figure is read beside the quality it was bought at.

With the gateway selected, a second measurement: download latency of a 50 KB stored object
(GET /v1/image/download/…, c=16), idle and then while the c=8 processing load runs.

Run through bench/processing.sh, which installs the servers, builds the gateway and runs this
with the test tools' Python (Pillow and numpy, for the scores):
  bash bench/processing.sh --duration 10 --servers imgproxy,thumbor,vips
"""

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from PIL import Image
from servers import (  # bench/servers.py
    CHILDREN,
    CLK_TCK,
    MATE_DIR,
    RssSampler,
    cpu_model,
    cpu_seconds,
    free_port,
    http_get,
    jpeg_size,
    lua_pace,
    mate_photos,
    shipped_env,
    stop_children,
    tree,
    wait_http,
    wrk_command,
    wrk_result,
)
from servers import Gateway as GatewayProcess
from servers import wrk as run_wrk

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import image_quality  # noqa: E402  scripts/image_quality.py: the tests' SSIM and PSNR

SERVERS = ["imgproxy", "imgproxy4", "thumbor", "vips", "gateway"]

BOX = 512
# imgproxy's published benchmark: JPEG q80, WebP q75; AVIF at imgproxy's default quality (63)
# and the benchmark's speed (AVIF_SPEED), below.
QUALITY = {"jpeg": 80, "webp": 75, "avif": 63}
AVIF_SPEED = 9
PACE_MS = 8  # 16 connections × 125/s = 2,000 downloads/s
DOWNLOAD_BYTES = 50_000
SPOILED_CORES = 0.1  # a row during which the rest of the machine used more is measured again
THUMBOR_PROCESSES = 2  # one per core of the 2-core benchmark machine

# Why wrk: it keeps every request's latency (µs) in its histogram, so its p50/p99 are exact over
# all requests of a run, and one event-loop thread (-t1) drives 16 connections at these rates
# using a small part of one core, less than any Python client would take from the servers'
# CPU. Lua cycles through every image's request path; response() counts answers that are not
# 200 and the body bytes of those that are; done() prints one JSON line.
WRK_LUA = r"""
local paths = {PATHS}
local method = "{METHOD}"
local i = 0
local hdrs = {HEADERS}
local threads = {}
local requests_ = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  bad = 0
  ok = 0
  body_bytes = 0
  for n, path in ipairs(paths) do
    requests_[n] = wrk.format(method, path, hdrs)
  end
end

request = function()
  i = i % #paths + 1
  return requests_[i]
end

response = function(status, headers, body)
  if status == 200 then
    ok = ok + 1
    body_bytes = body_bytes + #body
  else
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local bad_, ok_, bytes_ = 0, 0, 0
  for _, t in ipairs(threads) do
    bad_ = bad_ + t:get("bad")
    ok_ = ok_ + t:get("ok")
    bytes_ = bytes_ + t:get("body_bytes")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"timeouts":%d,' ..
    '"non200":%d,"ok":%d,"ok_body_bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.timeout,
    bad_, ok_, bytes_, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- images --------------------------------------------------------------------------------


def answer_size(data, fmt):
    """(width, height) of an answer that is a `fmt` image, or None."""
    if fmt == "jpeg":
        return jpeg_size(data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size if image.format.lower() == fmt else None
    except OSError:
        return None


def prepare_images(workdir, min_width, max_width):
    """Copies mate-backgrounds' JPEGs of min..max px wide into workdir/images (own names) and
    workdir/gateway-data (<md5>.jpg). Returns [{name, hex_name, bytes, width, height}]."""
    if not os.path.isdir(MATE_DIR):  # run without processing.sh: the same installer
        subprocess.run(["bash", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts",
                                             "apt-ensure.sh"), "mate-backgrounds"], check=True)
    images_dir = os.path.join(workdir, "images")
    data_dir = os.path.join(workdir, "gateway-data")
    os.makedirs(images_dir)
    os.makedirs(data_dir)
    images = []
    for file, data, size in mate_photos(min_width, max_width):
        hex_name = hashlib.md5(data).hexdigest() + ".jpg"
        for path in (os.path.join(images_dir, file), os.path.join(data_dir, hex_name)):
            with open(path, "wb") as f:
                f.write(data)
        images.append({"name": file, "hex_name": hex_name, "bytes": len(data),
                       "width": size[0], "height": size[1]})
    if not images:
        raise SystemExit(f"no JPEG {min_width}-{max_width} px wide under {MATE_DIR}")
    return images


# --- processes -----------------------------------------------------------------------------


def machine_busy_seconds():
    """CPU seconds spent outside idle and iowait by the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def client_cpu_seconds():
    """CPU seconds of this driver and of its waited-for children (wrk)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def wait_idle(max_wait_s, threshold=0.1):
    """Waits until the machine spends under `threshold` cores for 3 s running (on a shared machine
    a build elsewhere halves every figure). False if it never was within max_wait_s; max_wait_s
    0 does not look (a tiny run that measures nothing)."""
    if max_wait_s <= 0:
        return True
    deadline, said = time.monotonic() + max_wait_s, False
    while True:
        before = machine_busy_seconds()
        time.sleep(3)
        cores = (machine_busy_seconds() - before) / 3
        if cores < threshold:
            return True
        if time.monotonic() > deadline:
            log(f"the machine is still busy ({cores:.2f} cores); measuring anyway")
            return False
        if not said:
            log(f"waiting for the machine to be idle ({cores:.2f} cores busy elsewhere)")
            said = True


class Server:
    """Server processes (and their children), each in its own process group, logging to a file."""

    name = ""
    method = "GET"
    headers = {}

    def __init__(self, args, workdir, images):
        self.args, self.workdir, self.images = args, workdir, images
        self.procs = []

    def spawn(self, command, env=None, ready_path="/", pass_fds=(), wait=True):
        self.logfile = os.path.join(self.workdir, f"{self.name}.log")
        logf = open(self.logfile, "a")
        proc = subprocess.Popen(command, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=pass_fds)
        logf.close()
        CHILDREN.append(proc)
        self.procs.append(proc)
        if wait:
            wait_http(self.port, ready_path, 60.0, proc=proc, logfile=self.logfile)

    def pids(self):
        return [pid for proc in self.procs for pid in tree(proc.pid)]

    def stop(self):
        stop_children(self.procs)  # each in its own group: thumbor's forks too
        self.procs = []

    def paths(self):
        """The load's paths: every image at each quality of the spread in turn."""
        spread = range(self.quality - self.args.quality_spread, self.quality + self.args.quality_spread + 1)
        return [self.path(image, q) for q in spread for image in self.images]

    @property
    def format(self):
        return self.args.format

    @property
    def quality(self):
        return QUALITY[self.args.format]


class Imgproxy(Server):
    name = "imgproxy"

    @property
    def binary(self):
        return self.args.imgproxy

    def start(self):
        self.port = free_port()
        env = dict(os.environ, IMGPROXY_BIND=f"127.0.0.1:{self.port}",
                   IMGPROXY_LOCAL_FILESYSTEM_ROOT=os.path.join(self.workdir, "images"),
                   IMGPROXY_AVIF_SPEED=str(AVIF_SPEED))
        self.spawn([self.binary], env, "/health")

    def path(self, image, quality=None):
        q = quality or self.quality
        # No IMGPROXY_KEY/SALT: the signature part is not checked ("insecure" by convention).
        extension = "" if self.format == "jpeg" else f"@{self.format}"
        return f"/insecure/rs:fit:{BOX}:{BOX}/q:{q}/plain/local:///{image['name']}{extension}"

    def version(self):
        return subprocess.run([self.binary, "version"], capture_output=True, text=True).stdout.strip()


class Imgproxy4(Imgproxy):
    """imgproxy v4: the same URLs and settings, its own binary."""
    name = "imgproxy4"

    @property
    def binary(self):
        return self.args.imgproxy4


class Thumbor(Server):
    """thumbor with one process per core, in one of two ways (--thumbor-mode):
    reuseport  N `thumbor --fd` processes, each on its own SO_REUSEPORT socket of the same port:
               the kernel spreads connections over them (the default: it uses every core)
    processes  `thumbor --processes N`: Tornado forks N workers sharing one listening socket;
               the first worker to wake accepts every connection that arrives together, so under
               a keep-alive client (wrk opens all its connections at once) one worker does all
               the work and the others stay idle (measured: 486 vs 0 CPU ticks at c=8)."""

    name = "thumbor"

    def start(self):
        self.port = free_port()
        n, mode = self.args.thumbor_processes, self.args.thumbor_mode
        conf = os.path.join(self.workdir, "thumbor.conf")
        with open(conf, "w") as f:
            f.write(
                "LOADER = 'thumbor.loaders.file_loader'\n"
                f"FILE_LOADER_ROOT_PATH = {os.path.join(self.workdir, 'images')!r}\n"
                "STORAGE = 'thumbor.storages.no_storage'\n"
                "RESULT_STORAGE = None\n"
                f"QUALITY = {self.quality}\n"
                "ALLOW_UNSAFE_URL = True\n"
                "NON_BLOCKING_SOCKETS = True\n"  # for --fd
            )
        command = [self.args.thumbor, "-c", conf, "-l", "warning"]
        if mode == "processes":
            self.spawn(command + ["-i", "127.0.0.1", "-p", str(self.port), "--processes", str(n)],
                       ready_path="/healthcheck")
            return
        for _ in range(n):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(1024)
            sock.setblocking(False)
            # The child gets the socket; ours must close at once, or the connections the kernel
            # hands to it would wait unanswered.
            self.spawn(command + ["--fd", str(sock.fileno())], pass_fds=(sock.fileno(),), wait=False)
            sock.close()
        for _ in range(4 * n):  # new connections land on either socket: ask until all answered
            for proc in self.procs:
                wait_http(self.port, "/healthcheck", 60.0, proc=proc, logfile=self.logfile)

    def path(self, image, quality=None):
        q = quality or self.quality
        webp = ":format(webp)" if self.format == "webp" else ""
        return f"/unsafe/fit-in/{BOX}x{BOX}/filters:quality({q}){webp}/{image['name']}"

    def version(self):
        return subprocess.run([self.args.thumbor, "--version"], capture_output=True, text=True).stdout.strip()


class Vips(Server):
    name = "vips"

    def start(self):
        self.port = free_port()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vips_server.py")
        self.spawn([self.args.vips_python, script, "--root", os.path.join(self.workdir, "images"),
                    "--port", str(self.port)], ready_path=self.path(self.images[0]))

    def path(self, image, quality=None):
        q = quality or self.quality
        return f"/{image['name']}?w={BOX}&h={BOX}&q={q}"

    def version(self):
        code = ("import pyvips; print(f'pyvips {pyvips.__version__} '"
                "f'({\"API\" if pyvips.API_mode else \"ABI\"} mode), libvips '"
                "f'{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}')")
        return subprocess.run([self.args.vips_python, "-c", code], capture_output=True, text=True).stdout.strip()


class Gateway(Server):
    name = "gateway"

    @property
    def method(self):
        return "GET" if self.args.gateway_route == "variant" else "POST"

    @property
    def headers(self):
        return {"Accept": f"image/{self.format}"}

    def start(self):
        env = dict(
            shipped_env(),  # as the container image runs it; --gateway-env GLIBC_TUNABLES unsets
            IMAGE_GATEWAY_STORAGE__BACKEND="fs",
            IMAGE_GATEWAY_STORAGE__FS__ROOT=os.path.join(self.workdir, "gateway-data"),
            # Every request comes from 127.0.0.1, and a processing job holds an upload slot:
            # the default of 4 per client would answer 503 past c=4.
            IMAGE_GATEWAY_UPLOAD__MAX_CONCURRENT_PER_CLIENT="0",
        )
        if self.args.gateway_route == "variant":
            # Every request renders (no variant kept in memory, none stored), and 512 is a side
            # variants are served at (the default sides step from 480 to 560).
            env.update(IMAGE_GATEWAY_PROCESSING__AVIF_SPEED=str(AVIF_SPEED),
                       IMAGE_GATEWAY_VARIANTS__CACHE_MAX_BYTES="0", IMAGE_GATEWAY_VARIANTS__STORE="false",
                       IMAGE_GATEWAY_VARIANTS__SIDES=f"[{BOX}, 4096]")
        # No API key (the other servers ask for none); a session of its own, stopped as they are.
        gateway = GatewayProcess(self.args.gateway, self.workdir, self.name, env, auth=False,
                                 env_items=self.args.gateway_env, new_group=True)
        self.port = gateway.port
        self.procs.append(gateway.proc)

    @property
    def quality(self):
        # Encoders' quality scales differ (rav1e's against libaom's): --gateway-quality sets the
        # gateway's own, so that rows can be compared at equal SSIM rather than at equal numbers.
        return self.args.gateway_quality or QUALITY[self.args.format]

    def path(self, image, quality=None):
        q = quality or self.quality
        if self.args.gateway_route == "variant":
            return (f"/v1/image/download/{image['hex_name']}?w={BOX}&h={BOX}&fit=inside&q={q}"
                    f"&format={self.format}")
        return (f"/v1/image/resize?source={image['hex_name']}&width={BOX}&height={BOX}"
                f"&fit=inside&quality={q}&format={self.format}")

    def version(self):
        return subprocess.run([self.args.gateway, "--version"], capture_output=True, text=True).stdout.strip()


CLASSES = {"imgproxy": Imgproxy, "imgproxy4": Imgproxy4, "thumbor": Thumbor, "vips": Vips, "gateway": Gateway}


# --- load ----------------------------------------------------------------------------------


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_lua(workdir, label, method, paths, headers, pace_ms=None):
    """A wrk script cycling over `paths`; with `pace_ms`, each connection waits that long before
    each request (servers.lua_pace)."""
    path = os.path.join(workdir, f"{label}.lua")
    with open(path, "w") as f:
        f.write(WRK_LUA.replace("{PATHS}", "{" + ", ".join(lua_string(p) for p in paths) + "}")
                .replace("{METHOD}", method)
                .replace("{HEADERS}", "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}"
                                                      for k, v in headers.items()) + "}"))
        if pace_ms:
            f.write(lua_pace(pace_ms))
    return path


def counted(run):
    """WRK_LUA's counts on top of servers.wrk_result: answers 200 per second (a fast 503 is no
    image) and every kind of error."""
    seconds = run["duration_us"] / 1e6
    run["ok_rps"] = run["ok"] / seconds if seconds else 0.0
    run["errors"] = run["non200"] + run["socket_errors"] + run["timeouts"]
    return run


def wrk(port, concurrency, duration, lua):
    """One wrk thread (-t1, see WRK_LUA); the method, paths and headers are in the script."""
    return counted(run_wrk(f"http://127.0.0.1:{port}", [], concurrency, duration, lua, threads=1))


def check_answers(server, references):
    """Every image once: 200, an image of the asked format fitting BOXxBOX with its long side BOX, scored against a
    full decode resampled by Lanczos3 to its size (`references` keeps those, by image and size,
    for the next server). Returns details."""
    answers = []
    for image in server.images:
        started = time.monotonic()
        # A POST without a body and without Content-Type, as wrk sends it (servers.http_get).
        status, body, headers = http_get(server.port, server.path(image), server.method, server.headers, timeout=120)
        content_type = headers.get("Content-Type")
        if status != 200:
            raise SystemExit(f"{server.name} {image['name']}: {status} {body[:300]!r}")
        elapsed_ms = (time.monotonic() - started) * 1000
        size = answer_size(body, server.format)
        if size is None:
            raise SystemExit(f"{server.name} {image['name']}: not {server.format} ({content_type}, {body[:16]!r})")
        if max(size) != BOX or min(size) > BOX:
            raise SystemExit(f"{server.name} {image['name']}: {size[0]}x{size[1]} does not fit {BOX}x{BOX}")
        key = (image["name"], size)
        if key not in references:
            references[key] = image_quality.full(os.path.join(server.workdir, "images", image["name"]), size)
        ours = image_quality.rgb_array(Image.open(io.BytesIO(body)))
        answers.append({"name": image["name"], "width": size[0], "height": size[1], "bytes": len(body),
                        "content_type": content_type, "first_ms": round(elapsed_ms, 1),
                        **image_quality.metrics(ours, references[key])})
    return answers


def quality(answers):
    """Mean and worst SSIM and PSNR of a server's answers, and their mean size."""
    ssim, psnr = [a["ssim"] for a in answers], [a["psnr"] for a in answers]
    return {"ssim_mean": round(sum(ssim) / len(ssim), 4), "ssim_min": min(ssim),
            "psnr_mean": round(sum(psnr) / len(psnr), 2), "psnr_min": min(psnr),
            "bytes_mean": round(sum(a["bytes"] for a in answers) / len(answers))}


def measure(server, concurrency, args, lua):
    """A fresh server: warm-up, then the measured run with CPU and RSS of its process tree."""
    server.start()
    try:
        sampler = RssSampler(server.pids)
        if args.warmup > 0:
            wrk(server.port, concurrency, args.warmup, lua)
        pids = server.pids()
        cpu_before = {pid: cpu_seconds([pid]) for pid in pids}
        machine_before, wrk_before = machine_busy_seconds(), client_cpu_seconds()
        run = wrk(server.port, concurrency, args.duration, lua)
        machine, client = machine_busy_seconds() - machine_before, client_cpu_seconds() - wrk_before
        per_process = [round(cpu_seconds([pid]) - cpu_before.get(pid, 0), 2) for pid in server.pids()]
        cpu = sum(per_process)
        peak = sampler.stop()
    finally:
        server.stop()
    run.update(
        server=server.name, concurrency=concurrency, cpu_s=round(cpu, 3),
        cpu_s_per_process=per_process,  # shows whether thumbor's workers shared the load
        client_cpu_s=round(client, 2),
        # CPU the rest of the machine used meanwhile (in cores): other work spoils the row
        others_cores=round(max(0.0, machine - cpu - client) / (run["duration_us"] / 1e6), 2),
        cpu_ms_per_image=round(cpu * 1000 / run["ok"], 2) if run["ok"] else None,
        peak_rss_mib=round(peak / 1024, 1),
        mean_output_bytes=round(run["ok_body_bytes"] / run["ok"]) if run["ok"] else None,
    )
    return run


def download_under_load(server, args, workdir):
    """GET of a 50 KB object at c=16, idle, then while c=8 processing runs on the same gateway;
    twice: closed-loop (wrk as fast as it can: the machine is saturated by downloads alone, so
    any extra work queues) and paced (each connection one request every PACE_MS ms, 2,000/s:
    downloads as a light load beside saturating processing, what the target is about)."""
    name = hashlib.md5(b"download-under-load").hexdigest() + ".jpg"
    with open(os.path.join(workdir, "gateway-data", name), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + os.urandom(DOWNLOAD_BYTES - 4))
    proc_lua = write_lua(workdir, "gateway-load", server.method, server.paths(), server.headers)
    c_dl, c_proc, seconds = args.download_concurrency, args.download_load_concurrency, args.download_duration
    result = {"object_bytes": DOWNLOAD_BYTES, "download_concurrency": c_dl, "processing_concurrency": c_proc,
              "duration_s": seconds, "pace_ms": PACE_MS}
    for mode, pace in (("closed", None), ("paced", PACE_MS)):
        dl_lua = write_lua(workdir, f"download-{mode}", "GET", [f"/v1/image/download/{name}"], {}, pace)
        server.start()
        try:
            if args.download_warmup > 0:
                wrk(server.port, c_dl, args.download_warmup, dl_lua)
            idle = wrk(server.port, c_dl, seconds, dl_lua)
            # The processing load starts first and outlasts the download run on both sides.
            load = subprocess.Popen(wrk_command(f"http://127.0.0.1:{server.port}", [], c_proc,
                                                seconds + args.warmup + 2, proc_lua, threads=1),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(args.warmup)
            loaded = wrk(server.port, c_dl, seconds, dl_lua)
            processing = counted(wrk_result(load.communicate(timeout=seconds + 300)[0]))
        finally:
            server.stop()
        result[mode] = {
            "idle": idle, "under_load": loaded, "processing": processing,
            "p50_ratio": round(loaded["p50_us"] / idle["p50_us"], 2) if idle["p50_us"] else None,
            "p99_ratio": round(loaded["p99_us"] / idle["p99_us"], 2) if idle["p99_us"] else None,
        }
    return result


# --- report --------------------------------------------------------------------------------


def markdown(report):
    meta = report["meta"]
    lines = [
        "# Processing benchmark",
        "",
        f"{meta['date']}, {meta['cpu']} ({meta['cores']} cores), {meta['kernel']}. "
        f"{len(meta['images'])} JPEGs of Debian's mate-backgrounds "
        f"({min(i['width'] for i in meta['images'])}-{max(i['width'] for i in meta['images'])} px wide, "
        f"{sum(i['bytes'] for i in meta['images']) / len(meta['images']) / 1e6:.2f} MB mean) "
        f"shrunk to fit {BOX}x{BOX}, {meta['format'].upper()} quality {QUALITY[meta['format']]}; client wrk -t1, "
        f"{meta['warmup_s']} s warm-up then {meta['duration_s']} s measured per row, a fresh server per row.",
        "",
    ]
    for name, version in meta["versions"].items():
        lines.append(f"- **{name}**: {version}; {meta['configs'][name]}")
    spoiled = [r for r in report["results"] if r["others_cores"] > SPOILED_CORES]
    if spoiled:
        lines += ["", f"**Warning**: other processes used up to {max(r['others_cores'] for r in spoiled)} "
                      f"cores during {len(spoiled)} row(s) (`others_cores` in the JSON); those figures are low."]
    lines += [
        "",
        "req/s: answers 200 per second; p50/p99: wrk's latency over all requests; CPU: user + "
        "system time of the server's process tree per image answered; peak RSS: the largest sum of "
        "VmRSS over the tree, sampled every 100 ms through warm-up and run; errors: answers other "
        "than 200, socket errors and time-outs (60 s).",
        "",
        "Quality: each server's answer for every image, scored once before the load against the "
        "image decoded whole and resampled by Pillow's Lanczos3 to the answer's size "
        "(scripts/image_quality.py: SSIM on luma, 11x11 Gaussian window; PSNR over RGB).",
        "",
        "| server | SSIM mean | SSIM worst | PSNR mean dB | PSNR worst dB | mean output bytes |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {n} | {q['ssim_mean']} | {q['ssim_min']} | {q['psnr_mean']} | {q['psnr_min']} | {q['bytes_mean']} |"
          for n, q in report["quality"].items()),
        "",
        "| server | c | req/s | p50 ms | p99 ms | CPU ms/image | peak RSS MiB | mean output bytes | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['server']} | {r['concurrency']} | {r['ok_rps']:.1f} | {r['p50_us'] / 1000:.1f} | "
            f"{r['p99_us'] / 1000:.1f} | {r['cpu_ms_per_image']} | {r['peak_rss_mib']} | "
            f"{r['mean_output_bytes']} | {r['errors']} |")
    dl = report.get("download_under_load")
    if dl:
        lines += [
            "",
            "## Gateway download latency under processing load",
            "",
            f"GET of a {dl['object_bytes'] // 1000} KB stored object on {dl['download_concurrency']} connections "
            f"for {dl['duration_s']} s, idle, then while {dl['processing_concurrency']} connections of resize "
            f"requests run on the same gateway. *closed*: wrk as fast as it can (downloads alone saturate "
            f"both cores); *paced*: each connection one request every {dl['pace_ms']} ms "
            f"({dl['download_concurrency'] * 1000 // dl['pace_ms']}/s).",
            "",
            "| load | | downloads/s | p50 ms | p99 ms | errors | images/s meanwhile |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for mode in ("closed", "paced"):
            m = dl[mode]
            for label, key in (("idle", "idle"), ("under load", "under_load")):
                r = m[key]
                images = f"{m['processing']['ok_rps']:.1f}" if key == "under_load" else ""
                lines.append(f"| {mode} | {label} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | "
                             f"{r['p99_us'] / 1000:.2f} | {r['errors']} | {images} |")
            lines.append(f"| {mode} | ratio | | {m['p50_ratio']}x | {m['p99_ratio']}x | | |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, of " + ",".join(SERVERS))
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--format", choices=sorted(QUALITY), default="jpeg",
                        help="the answers' format, at the published benchmark's quality for it")
    parser.add_argument("--quality-spread", type=int, default=0, metavar="N",
                        help="load each image at qualities q-N..q+N in turn: with N >= 1 no two requests in "
                        "flight are one variant, which the gateway's single flight would serve from one render")
    parser.add_argument("--gateway-route", choices=["process", "variant"], default="process",
                        help="the gateway's endpoint: POST /v1/image/resize, or a variant at the download URL")
    parser.add_argument("--gateway-quality", type=int, metavar="Q",
                        help="the gateway's quality instead of the format's published one (equal-SSIM rows)")
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per row")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per row")
    parser.add_argument("--min-width", type=int, default=1000)
    parser.add_argument("--max-width", type=int, default=4096)
    parser.add_argument("--images", type=int, help="the first N of those images only (default: all)")
    parser.add_argument("--imgproxy", help="imgproxy binary (scripts/install-imgproxy.sh)")
    parser.add_argument("--imgproxy4", help="imgproxy v4 binary (IMGPROXY_VERSION=v4.0.12 scripts/install-imgproxy.sh)")
    parser.add_argument("--thumbor", help="thumbor executable (scripts/install-thumbor.sh)")
    parser.add_argument("--thumbor-processes", type=int, default=THUMBOR_PROCESSES)
    parser.add_argument("--thumbor-mode", choices=["reuseport", "processes"], default="reuseport",
                        help="how thumbor runs its processes (see class Thumbor)")
    parser.add_argument("--vips-python", help="python with pyvips (scripts/install-pyvips.sh)")
    parser.add_argument("--gateway", help="the gateway's release binary")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the gateway, e.g. IMAGE_GATEWAY_PROCESSING__WORKERS=2; a bare KEY "
                        "unsets one this script sets")
    parser.add_argument("--download-duration", type=int, default=10)
    parser.add_argument("--download-warmup", type=int, default=2, help="seconds of downloads before the idle run")
    parser.add_argument("--download-concurrency", type=int, default=16)
    parser.add_argument("--download-load-concurrency", type=int, default=8)
    parser.add_argument("--no-download", action="store_true", help="skip the download-under-load run")
    parser.add_argument("--wait-idle", type=int, default=900,
                        help="seconds to wait at most, before each row, for other processes to go idle (0: no check)")
    parser.add_argument("--retries", type=int, default=3,
                        help="runs of a row again when other processes used CPU during it")
    parser.add_argument("--out", default="bench/results/processing.json")
    parser.add_argument("--markdown", default="bench/results/processing.md")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args()
    names = [s for s in args.servers.split(",") if s]
    for name in names:
        if name not in CLASSES:
            parser.error(f"unknown server {name!r}; choose from {','.join(SERVERS)}")
        option = {"vips": "vips_python"}.get(name, name)
        if not getattr(args, option):
            parser.error(f"--{option.replace('_', '-')} is needed for {name}")
    if args.format != "jpeg" and "vips" in names:
        parser.error("bench/vips_server.py answers JPEG only")
    if args.format == "avif" and "thumbor" in names:
        parser.error("thumbor's PIL engine is not set up for AVIF here")
    levels = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")

    workdir = tempfile.mkdtemp(prefix="ig-processing-")
    try:
        images = prepare_images(workdir, args.min_width, args.max_width)[:args.images]
        log(f"{len(images)} images in {workdir}")
        servers = {name: CLASSES[name](args, workdir, images) for name in names}
        configs = {
            "imgproxy": "defaults (IMGPROXY_WORKERS = 2 x cores, libvips concurrency 1 per image, "
                        "metadata stripped) plus IMGPROXY_BIND and IMGPROXY_LOCAL_FILESYSTEM_ROOT; "
                        "no key/salt, so signatures are not checked",
            "imgproxy4": "as imgproxy",
            "thumbor": (f"{args.thumbor_processes} processes on SO_REUSEPORT sockets (thumbor --fd)"
                        if args.thumbor_mode == "reuseport" else f"thumbor --processes {args.thumbor_processes}")
                       + ", file loader, no storage nor result storage, "
                       f"QUALITY = {QUALITY[args.format]}, other settings default (PIL engine, progressive JPEG)",
            "vips": "bench/vips_server.py: thumbnail(size=down) + jpegsave Q=80 strip, a thread per "
                    "connection, libvips concurrency 1, operation cache off",
            "gateway": "fs backend, upload.max_concurrent_per_client = 0, "
                       + ("variants at the download URL, variants.cache_max_bytes = 0, variants.store = false, "
                          f"variants.sides = [{BOX}, 4096], " if args.gateway_route == "variant" else "POST /v1/image/resize, ")
                       + (f"quality {args.gateway_quality}, " if args.gateway_quality else "")
                       + "other settings default (processing.workers = one per core), "
                       + ", ".join(f"{k}={v}" for k, v in shipped_env().items()) + " as the container image"
                       + "".join(f", {e}" for e in args.gateway_env),
        }
        report = {"meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "kernel": platform.release(),
            "duration_s": args.duration, "warmup_s": args.warmup, "concurrency": levels,
            "format": args.format, "gateway_route": args.gateway_route, "quality_spread": args.quality_spread,
            "client": "wrk -t1 (" + subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
            .splitlines()[0].strip() + ")",
            "images": images, "versions": {}, "configs": {n: configs[n] for n in names}, "answers": {},
        }, "quality": {}, "results": []}
        references = {}
        for name, server in servers.items():
            report["meta"]["versions"][name] = server.version()
            server.start()
            try:
                report["meta"]["answers"][name] = check_answers(server, references)
            finally:
                server.stop()
            answers = report["meta"]["answers"][name]
            report["quality"][name] = q = quality(answers)
            log(f"{name} ({report['meta']['versions'][name]}): every image answered, "
                f"{q['bytes_mean']} bytes mean, e.g. {answers[0]['width']}x{answers[0]['height']}; "
                f"against a full decode + Lanczos3: SSIM {q['ssim_mean']} (worst {q['ssim_min']}), "
                f"PSNR {q['psnr_mean']} dB (worst {q['psnr_min']})")
        for name, server in servers.items():
            lua = write_lua(workdir, name, server.method, server.paths(), server.headers)
            for c in levels:
                for attempt in range(1 + args.retries):
                    wait_idle(args.wait_idle)
                    run = measure(server, c, args, lua)
                    run["attempt"] = attempt + 1
                    if run["others_cores"] <= SPOILED_CORES:
                        break
                    log(f"{name} c={c}: other processes took {run['others_cores']} cores meanwhile; again")
                report["results"].append(run)
                log(f"{name:<9} c={c:<2} {run['ok_rps']:7.1f} images/s  p50 {run['p50_us'] / 1000:7.1f} ms  "
                    f"p99 {run['p99_us'] / 1000:7.1f} ms  cpu {run['cpu_ms_per_image']} ms/image  "
                    f"rss {run['peak_rss_mib']} MiB  out {run['mean_output_bytes']} B  errors {run['errors']}  "
                    f"others {run['others_cores']} cores")
        if "gateway" in servers and not args.no_download:
            wait_idle(args.wait_idle)
            dl = download_under_load(servers["gateway"], args, workdir)
            report["download_under_load"] = dl
            for mode in ("closed", "paced"):
                m = dl[mode]
                log(f"download {DOWNLOAD_BYTES // 1000} KB c={dl['download_concurrency']} {mode}: "
                    f"p50 {m['idle']['p50_us'] / 1000:.2f} -> {m['under_load']['p50_us'] / 1000:.2f} ms, "
                    f"p99 {m['idle']['p99_us'] / 1000:.2f} -> {m['under_load']['p99_us'] / 1000:.2f} ms "
                    f"(x{m['p50_ratio']}, x{m['p99_ratio']}; {m['processing']['ok_rps']:.1f} images/s)")
        for path in (args.out, args.markdown):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        with open(args.markdown, "w") as f:
            f.write(markdown(report))
        log(f"wrote {args.out} and {args.markdown}")
    finally:
        stop_children()
        if args.keep_workdir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
