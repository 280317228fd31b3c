"""The one harness of bench/: the servers the benchmarks start (S3 stores: Garage, MinIO; the
gateway, nginx), the /proc readings taken of them (CPU time, RSS and peak RSS, process trees),
the wrk runner (its command, its result line, a Zipf picker, a pace) and the gateway's metrics.
Every benchmark takes these from here and from nowhere else, so that a fix (a readiness wait
that notices a crashed server, a process group killed whole) reaches all of them. Every
process started here ends with the benchmark (stop_children), also on errors and Ctrl-C.
Python standard library only.
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "bench-" + secrets.token_hex(16)


CHILDREN = []


def shipped_env():
    """What the container image sets in the gateway's environment (the Dockerfile's
    GLIBC_TUNABLES, two malloc arenas): benchmarks run the gateway as it ships. Under glibc's
    default arenas the cached-variant load ran at 41-54k req/s instead of 62-65k."""
    dockerfile = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Dockerfile")
    with open(dockerfile) as f:
        found = re.search(r"GLIBC_TUNABLES=(\S+)", f.read())
    if not found:
        raise SystemExit("the Dockerfile sets no GLIBC_TUNABLES any more: update bench/servers.py")
    return {"GLIBC_TUNABLES": found.group(1)}


def stop_children(procs=None):
    """Every server this run started (or those of `procs`) ends with it, also on errors and
    Ctrl-C. A server started in a session of its own (start_new_session) loses its whole group:
    thumbor's forks too."""
    for proc in CHILDREN if procs is None else procs:
        if proc.poll() is None:
            try:
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, method="GET", headers=None, timeout=30):
    """(status, body, headers: case-insensitive) of one request on a connection of its own.
    http.client, not urllib: a POST without a body goes out without Content-Type, as wrk sends
    it, and an error status is an answer, not an exception."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def wait_http(port, path, deadline_s=30.0, expect=200, proc=None, logfile=None):
    """Until 127.0.0.1:port answers `expect` on path. With `proc`, a server that exits fails at
    once (naming its log) instead of at the deadline."""
    deadline = time.monotonic() + deadline_s
    see = f"; see {logfile}" if logfile else ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}{see}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                if r.status == expect:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"nothing answered {expect} on 127.0.0.1:{port}{path} within {deadline_s}s{see}")


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def reset_peak_rss(pid):
    """Linux resets VmHWM when 5 is written to clear_refs (owner or root only)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def status_kib(pids, field):
    """The sum of a /proc/<pid>/status field in KiB (VmRSS, VmHWM) over pids; a process that
    has gone counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def peak_rss_kib(pid):
    return status_kib([pid], "VmHWM")


def rss_kib(pids):
    return status_kib(pids, "VmRSS")


def children(pid):
    """The processes pid started, from any of its threads."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return found


def tree(pid):
    """pid and all its descendants (thumbor forks one worker per process)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


class RssSampler:
    """Sums VmRSS over a process tree (`pids()`, asked anew each time: workers come and go)
    every 100 ms; .peak_kib is the largest sum seen."""

    def __init__(self, pids):
        self.pids, self.peak_kib, self.samples = pids, 0, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_event.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib(self.pids()))
            self.samples += 1
            self.stop_event.wait(0.1)

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        return self.peak_kib


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"



def presign(endpoint_port, bucket, access_key, secret_key, method, key, expires=86400):
    """A SigV4 presigned path (path style, us-east-1) for `method` on `key`."""
    host = f"127.0.0.1:{endpoint_port}"
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/s3/aws4_request"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in sorted(query.items())
    )
    path = urllib.parse.quote(f"/{bucket}/{key}", safe="/~")
    request = "\n".join([method, path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key_bytes = ("AWS4" + secret_key).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{path}?{canonical_query}&X-Amz-Signature={signature}"


class S3Store:
    """What the benchmarks use of an S3 server: presigned URLs, PUT, the gateway's settings."""

    s3_port: int
    access_key: str
    secret_key: str
    bucket = "images"
    proc: subprocess.Popen

    def presign(self, method, key, expires=86400):
        return presign(self.s3_port, self.bucket, self.access_key, self.secret_key, method, key, expires)

    def put(self, key, data):
        url = f"http://127.0.0.1:{self.s3_port}{self.presign('PUT', key)}"
        request = urllib.request.Request(url, data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200, r.status

    def gateway_env(self):
        return {
            "IMAGE_GATEWAY_STORAGE__BACKEND": "s3",
            "IMAGE_GATEWAY_STORAGE__S3__ENDPOINT": f"http://127.0.0.1:{self.s3_port}",
            "IMAGE_GATEWAY_STORAGE__S3__BUCKET": self.bucket,
            "IMAGE_GATEWAY_STORAGE__S3__ACCESS_KEY_ID": self.access_key,
            "IMAGE_GATEWAY_STORAGE__S3__SECRET_ACCESS_KEY": self.secret_key,
        }

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Garage(S3Store):
    def __init__(self, binary, workdir):
        self.dir = workdir
        self.s3_port, rpc, admin = free_port(), free_port(), free_port()
        self.admin_port = admin
        self.access_key = "GK" + secrets.token_hex(12)
        self.secret_key = secrets.token_hex(32)
        self.bucket = "images"
        config = os.path.join(workdir, "garage.toml")
        with open(config, "w") as f:
            f.write(
                f'metadata_dir = "{workdir}/meta"\ndata_dir = "{workdir}/data"\ndb_engine = "lmdb"\n'
                f'replication_factor = 1\nrpc_bind_addr = "127.0.0.1:{rpc}"\n'
                f'rpc_public_addr = "127.0.0.1:{rpc}"\nrpc_secret = "{secrets.token_hex(32)}"\n'
                f'[s3_api]\ns3_region = "us-east-1"\napi_bind_addr = "127.0.0.1:{self.s3_port}"\n'
                f'[admin]\napi_bind_addr = "127.0.0.1:{admin}"\n'
            )
        os.chmod(config, 0o600)
        env = dict(os.environ, RUST_LOG="warn", GARAGE_DEFAULT_ACCESS_KEY=self.access_key,
                   GARAGE_DEFAULT_SECRET_KEY=self.secret_key, GARAGE_DEFAULT_BUCKET=self.bucket)
        self.log = open(os.path.join(workdir, "garage.log"), "w")
        self.proc = subprocess.Popen([binary, "-c", config, "server", "--single-node", "--default-bucket"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        CHILDREN.append(self.proc)
        wait_http(admin, "/health")


class Minio(S3Store):
    """A single-drive MinIO (scripts/install-minio.sh) with bucket `images`; its Prometheus
    metrics are public, so `get_requests()` counts the GETs that reached storage."""

    def __init__(self, binary, workdir):
        self.dir = workdir
        self.s3_port = free_port()
        self.access_key = "bench" + secrets.token_hex(8)
        self.secret_key = secrets.token_hex(20)
        self.mc = os.path.join(os.path.dirname(binary), "mc")
        env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key,
                   MINIO_BROWSER="off", MINIO_UPDATE="off", MINIO_PROMETHEUS_AUTH_TYPE="public", HOME=workdir)
        self.log = open(os.path.join(workdir, "minio.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "server", os.path.join(workdir, "data"), "--address", f"127.0.0.1:{self.s3_port}",
             "--console-address", f"127.0.0.1:{free_port()}", "--quiet"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        CHILDREN.append(self.proc)
        wait_http(self.s3_port, "/minio/health/ready")
        self.run_mc("mb", "--ignore-existing", f"local/{self.bucket}")

    def run_mc(self, *args, data=None):
        host = f"http://{self.access_key}:{self.secret_key}@127.0.0.1:{self.s3_port}"
        subprocess.run([self.mc, "--config-dir", os.path.join(self.dir, "mc"), "--quiet", "--no-color", *args],
                       env=dict(os.environ, MC_HOST_local=host), input=data, check=True, capture_output=True)

    def get_requests(self):
        """GetObject and HeadObject requests MinIO has served, 404s included. Its v3 metrics:
        the v2 endpoints cache their values for tens of seconds. MinIO counts a request when
        its handler returns, maybe after the client has its answer: read until it holds still."""
        last = None
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.s3_port}/minio/metrics/v3/api/requests",
                                        timeout=10) as r:
                text = r.read().decode()
            total = 0.0
            for line in text.splitlines():
                if line.startswith("minio_api_requests_total{") and re.search(r'name="(GetObject|HeadObject)"', line):
                    total += float(line.rsplit(" ", 1)[1])
            if total == last:
                return int(total)
            last = total
            time.sleep(0.3)


def apply_env(env, items):
    """--gateway-env items onto env: KEY=VALUE sets, a bare KEY unsets."""
    for item in items:
        key, eq, value = item.partition("=")
        if eq:
            env[key] = value
        else:
            env.pop(key, None)
    return env


class Gateway:
    """The gateway's `serve`, ready when its admin port's /readyz answers 200. `env` holds the
    storage settings and whatever else the benchmark sets; `env_items` (--gateway-env) come
    last. auth=False leaves the default (no key asked); new_group starts it in a session of its
    own, like the servers it is compared with in processing.py."""

    def __init__(self, binary, workdir, name, env, auth=True, env_items=(), new_group=False):
        self.port, self.admin_port = free_port(), free_port()
        auth_env = {"IMAGE_GATEWAY_AUTH__MODE": "api_key",
                    "IMAGE_GATEWAY_AUTH__API_KEYS": f'["read:{API_KEY}"]'} if auth else {}
        self.env = dict(
            os.environ,
            IMAGE_GATEWAY_LISTEN=f"127.0.0.1:{self.port}",
            IMAGE_GATEWAY_ADMIN_LISTEN=f"127.0.0.1:{self.admin_port}",
            IMAGE_GATEWAY_LOG__FORMAT="json",
            **auth_env,
            **env,
        )
        # The benchmark's settings only: not the caller's log level nor a config file of theirs.
        self.env.pop("RUST_LOG", None)
        self.env.pop("IMAGE_GATEWAY_CONFIG", None)
        apply_env(self.env, env_items)
        self.binary = binary
        self.logfile = os.path.join(workdir, f"{name}.log")
        with open(self.logfile, "a") as log:  # a server restarted under one name keeps one log
            self.proc = subprocess.Popen([binary, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=new_group)
        CHILDREN.append(self.proc)
        wait_http(self.admin_port, "/readyz", proc=self.proc, logfile=self.logfile)

    def pids(self):
        return [self.proc.pid]

    def stop(self, graceful=True):
        """graceful: SIGTERM, which waits out shutdown.grace (5 s by default) with /readyz at
        503; otherwise SIGKILL, for a benchmark done with it."""
        if graceful:
            self.proc.terminate()
        else:
            self.proc.kill()
        self.proc.wait()


NGINX_CONF = """
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log {dir}/nginx-access.log;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000;
  types {{ image/png png; }}
  upstream garage {{ server 127.0.0.1:{s3}; }}
  server {{
    listen 127.0.0.1:{proxy};
    location / {{
      proxy_pass http://garage;
      proxy_set_header Host 127.0.0.1:{s3};
      proxy_buffering off;
    }}
  }}
  server {{
    listen 127.0.0.1:{static};
    location /v1/image/download/ {{ alias {root}/; }}
  }}
}}
"""


class Nginx:
    def __init__(self, workdir, s3_port, root):
        self.proxy_port, self.static_port = free_port(), free_port()
        os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=workdir, s3=s3_port, proxy=self.proxy_port,
                                      static=self.static_port, root=root))
        # A group of its own: stop_children's SIGKILL then takes the workers with the master
        # (killed alone, it left them running, orphaned, after every load.py run).
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        CHILDREN.append(self.proc)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(workdir, "nginx.pid")) or not children(self.proc.pid):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"nginx did not start; see {workdir}/nginx-error.log")
            time.sleep(0.05)

    def pids(self):
        return children(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# --- images ------------------------------------------------------------------------------------


def jpeg_size(data):
    """(width, height) from a JPEG's SOF segment, or None if data is no JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


MATE_DIR = "/usr/share/backgrounds/mate"


def mate_photos(min_width, max_width):
    """The JPEGs of Debian's mate-backgrounds min..max px wide, in a stable order, a file name
    met again in another folder skipped: (file name, bytes, (width, height))."""
    seen = set()
    for dirpath, _, files in sorted(os.walk(MATE_DIR)):
        for file in sorted(files):
            if not file.lower().endswith(".jpg") or file in seen:
                continue
            with open(os.path.join(dirpath, file), "rb") as f:
                data = f.read()
            size = jpeg_size(data)
            if size is None or not min_width <= size[0] <= max_width:
                continue
            seen.add(file)
            yield file, data, size


# --- wrk and metrics -------------------------------------------------------------------------

WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

# Each wrk thread draws its paths from a Zipf(s) distribution over the table (rank 1 the most
# popular), by binary search in the cumulative weights.
WRK_ZIPF = r"""
local paths = {%(paths)s}
local cdf = {%(cdf)s}
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
init = function(args)
  math.randomseed(seed * 7919 + os.time())
end
request = function()
  local u = math.random()
  local lo, hi = 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", paths[lo])
end
"""


def lua_pace(pace_ms):
    """Lua that makes each wrk connection wait pace_ms before each request (wrk's delay()): an
    open-ish load of connections x 1000/pace_ms requests/s."""
    return f"\nfunction delay()\n  return {pace_ms}\nend\n"


def lua_file(workdir, name, paths=None, zipf_s=1.0, pace_ms=None):
    """A wrk script: the result line, with `paths` the Zipf picker over them, with `pace_ms` a
    pace."""
    path = os.path.join(workdir, f"{name}.lua")
    text = WRK_DONE
    if paths:
        weights = [1 / (rank ** zipf_s) for rank in range(1, len(paths) + 1)]
        total, running, cdf = sum(weights), 0.0, []
        for w in weights:
            running += w
            cdf.append(running / total)
        cdf[-1] = 1.0
        text += WRK_ZIPF % {"paths": ",".join(json.dumps(p) for p in paths),
                            "cdf": ",".join(f"{c:.9f}" for c in cdf)}
    if pace_ms:
        text += lua_pace(pace_ms)
    with open(path, "w") as f:
        f.write(text)
    return path


def wrk_command(url, headers, concurrency, duration, lua, threads=None):
    """threads: one per core of the 2-core benchmark machine unless told (one connection needs
    one thread)."""
    threads = threads or (1 if concurrency == 1 else 2)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "60s", "-s", lua]
    for h in headers:
        command += ["-H", h]
    command.append(url)
    return command


def wrk_result(out):
    """The JSON line a script's done() printed, with requests per second added (rps)."""
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            run = json.loads(line[len("WRK_JSON "):])
            seconds = run["duration_us"] / 1e6
            run["rps"] = run["requests"] / seconds if seconds else 0.0
            return run
    raise SystemExit(f"wrk printed no result:\n{out}")


def wrk(url, headers, concurrency, duration, lua, threads=None):
    out = subprocess.run(wrk_command(url, headers, concurrency, duration, lua, threads),
                         capture_output=True, text=True, timeout=duration + 180)
    return wrk_result(out.stdout + out.stderr)


def metric(admin_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


def herd(port, path, headers=(), clients=256, timeout=60):
    """`clients` connections, opened first, each sending one GET of `path` at the same instant.
    Answers each one's (status or error, body, arrival time) and the release time."""
    connections = []
    for _ in range(clients):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.connect()
        connections.append(conn)
    start = threading.Barrier(clients + 1)
    results = []

    def one(conn):
        start.wait()
        try:
            conn.request("GET", path, headers=dict(h.split(": ", 1) for h in headers))
            response = conn.getresponse()
            results.append((response.status, response.read(), time.monotonic()))
        except OSError as e:
            results.append((str(e), b"", time.monotonic()))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    start.wait()
    released = time.monotonic()
    for t in threads:
        t.join()
    return results, released
