#!/usr/bin/env python3
"""NGINX's own S3 gateway (github.com/nginxinc/nginx-s3-gateway), run without docker.

A benchmark anchor: Debian's nginx + njs signing each GET with SigV4 in JavaScript, in front of
a local S3 store (path-style, http on 127.0.0.1, region us-east-1), with or without upstream's
proxy_cache. scripts/install-nginx-s3-gateway.sh puts the project's tree (commit ea82f3b) into
the cache and installs nginx, libnginx-mod-http-js, libnginx-mod-http-xslt-filter, gettext-base.

NginxS3Gateway does what the project's docker image does at start, into a private folder:
  - the environment: Dockerfile.oss's ENV defaults, the S3 settings, and what
    common/docker-entrypoint.sh derives (S3_UPSTREAM, S3_HOST_HEADER, LIMIT_METHODS_TO[_CSV],
    CORS_*, DNS_RESOLVERS);
  - the templates (common/etc/nginx/templates/** and oss/etc/nginx/templates/**) through
    `envsubst '${A} ${B} ...'` with that variable list, as the image's
    20-envsubst-on-templates.sh does (it lists every defined variable; this lists the gateway's);
  - the includes (njs scripts, listing.xsl) and oss/etc/nginx/conf.d/gateway/server_variables.conf
    copied unchanged;
  - nginx.conf from the project's own common/etc/nginx/nginx.conf, edited the way
    Dockerfile.unprivileged edits it (no `user`, pid and temp paths moved) plus: 2 workers,
    error_log and modules by absolute path, access_log off (or to a file).
Two mechanical edits to the rendered files, neither changing what the gateway does:
  - paths: the templates name /etc/nginx/conf.d/..., /etc/nginx/include/... and
    /var/cache/nginx/... absolutely; those prefixes are moved into the private folder;
  - listen: default.conf's server has no `listen` (port 80 in the image);
    Dockerfile.unprivileged adds one after `server {` with sed, and so does this
    (127.0.0.1:<port>). It also points s3gateway.js's self-fetch (http://127.0.0.1:80, used
    only with PROVIDE_INDEX_PAGE) at that port, as that Dockerfile does.
cache=True keeps upstream's caching as shipped (proxy_cache s3_cache, 200 for 1h, 404 for 1m,
proxy_cache_lock, revalidate, background update). The project has no switch to turn it off;
cache=False uses its extension point for the @s3 location (gateway/s3_location.conf, "add
additional configuration to the location @s3 block", included by @s3 and @s3_sliced) to add
`proxy_cache_bypass 1; proxy_no_cache 1;`: nginx then neither looks up (nor waits on the cache
lock) nor stores, and proxies every GET. (`proxy_cache off;` there is refused as a duplicate in
@s3_sliced, and PROXY_CACHE_VALID_OK=0 would still look up and serialise on proxy_cache_lock.)

What a benchmark should know, all upstream's design, kept as is:
  - every GET runs an auth_request subrequest (/aws/credentials/retrieve, njs; with static keys
    it answers at once) and then njs signing (js_set $s3auth, $awsDate, $awsPayloadHash);
  - upstream `storage_urls` has no `keepalive`, so each proxied GET opens a new connection to
    S3 (despite `proxy_http_version 1.1; Connection ''`);
  - a Range request goes to @s3_sliced (slice 1m, its own cache zone); a cold cache=True
    stampede is collapsed to one S3 GET by proxy_cache_lock; 404s are cached for 1m;
  - worker_connections stays upstream's 1024 per worker;
  - started as root, nginx runs the workers as `nobody` (the cache and temp folders are given
    to it); nginx gets a clean environment (njs reads process.env: a stray AWS_SESSION_TOKEN
    would be signed into every request).

Self-test (MinIO from scripts/install-minio.sh; needs no cargo build):
  python3 bench/s3_gateway.py --self-test
"""

import argparse
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

from servers import CHILDREN, Minio, children, free_port, http_get

NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
XSLT_MODULE = "/usr/lib/nginx/modules/ngx_http_xslt_filter_module.so"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Dockerfile.oss's ENV lines (the image's defaults).
IMAGE_DEFAULTS = {
    "PROXY_CACHE_MAX_SIZE": "10g",
    "PROXY_CACHE_INACTIVE": "60m",
    "PROXY_CACHE_SLICE_SIZE": "1m",
    "PROXY_CACHE_VALID_OK": "1h",
    "PROXY_CACHE_VALID_NOTFOUND": "1m",
    "PROXY_CACHE_VALID_FORBIDDEN": "30s",
    "CORS_ENABLED": "0",
    "CORS_ALLOW_PRIVATE_NETWORK_ACCESS": "",
    "DIRECTORY_LISTING_PATH_PREFIX": "",
    "STRIP_LEADING_DIRECTORY_PATH": "",
    "PREFIX_LEADING_DIRECTORY_PATH": "",
}

NO_CACHE = """
# bench/s3_gateway.py, cache=False: upstream's proxy_cache stays configured, but no request
# reads the cache (nor waits on proxy_cache_lock) and no response is stored.
proxy_cache_bypass 1;
proxy_no_cache 1;
"""


def resolvers():
    """common/docker-entrypoint.sh: the nameservers of /etc/resolv.conf (IPv6 in brackets)."""
    found = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    found.append(f"[{fields[1]}]" if ":" in fields[1] else fields[1])
    except OSError:
        pass
    # `resolver ;` does not parse; the upstream is an IP literal, so nothing is ever resolved.
    return " ".join(found) or "127.0.0.1"


def replace_once(text, old, new, what):
    if text.count(old) != 1:
        raise RuntimeError(f"{what}: expected one {old!r}, found {text.count(old)}; upstream changed?")
    return text.replace(old, new)


class NginxS3Gateway:
    """nginx-s3-gateway on 127.0.0.1:<.port> proxying bucket `bucket` of the S3 store on
    127.0.0.1:<s3_endpoint_port> (path style, SigV4, region us-east-1).

    GET /<object key> returns the object; a missing key is 404 (upstream maps every S3 error
    except 404 to 404 too, so a signing failure also shows as 404). Files live in
    <workdir>/nginx-s3-gateway-<cache|nocache>-<port>/."""

    def __init__(self, tree, workdir, s3_endpoint_port, bucket, access_key, secret_key, cache: bool,
                 port=None, region="us-east-1", access_log=False, error_log_level="warn",
                 worker_processes=2, start=True):
        self.tree = os.path.abspath(tree)
        self.cache = cache
        self.port = port or free_port()
        self.dir = os.path.join(os.path.abspath(workdir),
                                f"nginx-s3-gateway-{'cache' if cache else 'nocache'}-{self.port}")
        self.etc = os.path.join(self.dir, "etc", "nginx")
        self.conf = os.path.join(self.etc, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.proc = None
        self.env = self._environment(s3_endpoint_port, bucket, access_key, secret_key, region)
        self._render(access_log, error_log_level, worker_processes)
        if start:
            self.start()

    # --- configuration -------------------------------------------------------------------

    def _environment(self, s3_port, bucket, access_key, secret_key, region):
        env = dict(IMAGE_DEFAULTS)
        env.update({
            "S3_BUCKET_NAME": bucket,
            "S3_SERVER": "127.0.0.1",
            "S3_SERVER_PORT": str(s3_port),
            "S3_SERVER_PROTO": "http",
            "S3_REGION": region,
            "S3_STYLE": "path",
            "S3_SERVICE": "s3",
            "AWS_SIGS_VERSION": "4",
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "ALLOW_DIRECTORY_LIST": "false",
            "PROVIDE_INDEX_PAGE": "false",
            "APPEND_SLASH_FOR_POSSIBLE_DIRECTORY": "false",
            "DEBUG": "false",
        })
        # What common/docker-entrypoint.sh derives (CORS off; S3_STYLE=path).
        env.update({
            "DNS_RESOLVERS": resolvers(),
            "CORS_ENABLED": "0",
            "LIMIT_METHODS_TO": "GET HEAD",
            "LIMIT_METHODS_TO_CSV": "GET, HEAD",
            "CORS_ALLOWED_ORIGIN": "*",
            "S3_UPSTREAM": f"127.0.0.1:{s3_port}",
            "S3_HOST_HEADER": f"127.0.0.1:{s3_port}",
        })
        return env

    def _relocate(self, text):
        text = text.replace("/etc/nginx/conf.d/", os.path.join(self.etc, "conf.d") + "/")
        text = text.replace("/etc/nginx/include/", os.path.join(self.etc, "include") + "/")
        return text.replace("/var/cache/nginx/", os.path.join(self.dir, "cache") + "/")

    def _render(self, access_log, error_log_level, worker_processes):
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        for sub in ("etc/nginx/conf.d/gateway", "etc/nginx/include", "cache/s3_proxy",
                    "cache/s3_proxy_slices", "tmp"):
            os.makedirs(os.path.join(self.dir, sub))
        common = os.path.join(self.tree, "common", "etc", "nginx")
        oss = os.path.join(self.tree, "oss", "etc", "nginx")

        # include/: the njs scripts and listing.xsl, as shipped (s3gateway.js: see the docstring).
        for name in sorted(os.listdir(os.path.join(common, "include"))):
            shutil.copy(os.path.join(common, "include", name), os.path.join(self.etc, "include", name))
        js = os.path.join(self.etc, "include", "s3gateway.js")
        with open(js) as f:
            text = f.read()
        with open(js, "w") as f:
            f.write(replace_once(text, "http://127.0.0.1:80", f"http://127.0.0.1:{self.port}", "s3gateway.js"))
        shutil.copy(os.path.join(oss, "conf.d", "gateway", "server_variables.conf"),
                    os.path.join(self.etc, "conf.d", "gateway", "server_variables.conf"))

        # templates -> conf.d/ (Dockerfile.oss copies oss/etc, then common/etc, over /etc).
        templates = {}
        for base in (oss, common):
            root = os.path.join(base, "templates")
            for dirpath, _, files in os.walk(root):
                for name in files:
                    if name.endswith(".template"):
                        rel = os.path.relpath(os.path.join(dirpath, name), root)
                        templates[rel] = os.path.join(dirpath, name)
        shell_format = " ".join(f"${{{k}}}" for k in sorted(self.env))
        render_env = dict(self.env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
        for rel, path in sorted(templates.items()):
            with open(path) as f:
                out = subprocess.run(["envsubst", shell_format], stdin=f, env=render_env,
                                     capture_output=True, text=True, check=True).stdout
            out = self._relocate(out)
            if rel == "default.conf.template":
                out = re.sub(r"^server \{\n", f"server {{\n    listen       127.0.0.1:{self.port};\n",
                             out, count=1, flags=re.M)
                if f"listen       127.0.0.1:{self.port};" not in out:
                    raise RuntimeError("default.conf: no `server {` line to add `listen` after")
            if rel == os.path.join("gateway", "s3_location.conf.template") and not self.cache:
                out += NO_CACHE
            dest = os.path.join(self.etc, "conf.d", rel[: -len(".template")])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w") as f:
                f.write(out)
        leftover = []
        for dirpath, _, files in os.walk(os.path.join(self.etc, "conf.d")):
            for name in files:
                with open(os.path.join(dirpath, name)) as f:
                    leftover += re.findall(r"\$\{?[A-Z][A-Z0-9_]+\}?", f.read())
        if leftover:
            raise RuntimeError(f"unrendered variables in the gateway's config: {sorted(set(leftover))}")

        # nginx.conf: the project's own, edited.
        with open(os.path.join(common, "nginx.conf")) as f:
            text = f.read()
        what = "nginx.conf"
        text = replace_once(text, "user  nginx;\n", "", what)
        text = replace_once(text, "worker_processes  1;", f"worker_processes  {worker_processes};", what)
        text = replace_once(text, "error_log  /dev/stdout info;", f"error_log  {self.error_log} {error_log_level};", what)
        text = replace_once(text, "pid        /var/run/nginx.pid;", f"pid        {self.dir}/nginx.pid;", what)
        text = replace_once(text, "load_module modules/ngx_http_js_module.so;", f"load_module {NJS_MODULE};", what)
        text = replace_once(text, "load_module modules/ngx_http_xslt_filter_module.so;",
                            f"load_module {XSLT_MODULE};", what)
        tmp = os.path.join(self.dir, "tmp")
        text = replace_once(text, "http {\n", "http {\n" + "".join(
            f"    {kind}_temp_path {tmp}/{kind};\n" for kind in ("proxy", "client_body", "fastcgi", "uwsgi", "scgi")
        ), what)
        log = f"access_log  {self.dir}/access.log  main;" if access_log else "access_log  off;"
        text = replace_once(text, "access_log  /var/log/nginx/access.log  main;", log, what)
        text = replace_once(text, "include /etc/nginx/conf.d/*.conf;",
                            f"include {self.etc}/conf.d/*.conf;", what)
        with open(self.conf, "w") as f:
            f.write(text)

        # Started as root, nginx runs its workers (and cache manager/loader) as `nobody`: they
        # write the cache and temp folders and must reach them.
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for sub in ("cache", "cache/s3_proxy", "cache/s3_proxy_slices", "tmp"):
                os.chown(os.path.join(self.dir, sub), nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)
            path = os.path.dirname(self.dir)
            while path != "/":
                if not os.stat(path).st_mode & 0o001:
                    raise RuntimeError(f"{path} is not searchable by others; nginx's workers "
                                       f"(user nobody) could not reach {self.dir} (chmod o+x it)")
                path = os.path.dirname(path)

    # --- process -------------------------------------------------------------------------

    def start(self, timeout=15.0):
        # A clean environment: njs reads process.env, and a stray AWS_SESSION_TOKEN from the
        # caller's shell would be signed into every request.
        env = dict(self.env, PATH=os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        self._log = open(os.path.join(self.dir, "nginx.out"), "w")
        self.proc = subprocess.Popen(
            ["nginx", "-e", self.error_log, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
            # A group of its own: servers.stop_children's SIGKILL takes the workers with the master.
            start_new_session=True)
        CHILDREN.append(self.proc)  # ends with the benchmark, also on errors
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx-s3-gateway exited ({self.proc.returncode}): {self._tail()}")
            try:
                if len(self.worker_pids()) >= 1 and http_get(self.port, "/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx-s3-gateway did not answer on 127.0.0.1:{self.port}: {self._tail()}")
            time.sleep(0.05)

    def _tail(self):
        out = []
        for path in (os.path.join(self.dir, "nginx.out"), self.error_log):
            try:
                with open(path) as f:
                    out.append(f.read()[-2000:])
            except OSError:
                pass
        return "\n".join(out)

    def pids(self):
        """The master's children: the workers, and the cache manager and (for its first
        minute) cache loader that proxy_cache_path starts in both modes."""
        return children(self.proc.pid) if self.proc else []

    def worker_pids(self):
        found = []
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"worker process" in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# --- self-test ---------------------------------------------------------------------------


def self_test(tree=None, minio=None, keep=False):
    if tree is None:
        tree = subprocess.run(["bash", os.path.join(REPO, "scripts", "install-nginx-s3-gateway.sh")],
                              capture_output=True, text=True, check=True).stdout.strip()
    if minio is None:
        minio = subprocess.run(["bash", os.path.join(REPO, "scripts", "install-minio.sh")],
                               capture_output=True, text=True, check=True).stdout.strip()
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    njs = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-http-js"],
                         capture_output=True, text=True).stdout
    print(f"tree: {tree}\n{nginx_version}; libnginx-mod-http-js (njs) {njs}")

    workdir = tempfile.mkdtemp(prefix="ig-s3gw-selftest-", dir="/tmp")
    os.chmod(workdir, 0o755)
    failures = []

    def check(ok, message):
        print(("ok   " if ok else "FAIL ") + message)
        if not ok:
            failures.append(message)

    servers = []
    store = None
    try:
        os.makedirs(os.path.join(workdir, "minio"))
        store = Minio(minio, os.path.join(workdir, "minio"))
        bucket = store.bucket
        objects = {
            "photos/2024/cat 50kb.jpg": secrets.token_bytes(50_000),
            "1mb-" + secrets.token_hex(8) + ".png": secrets.token_bytes(1_000_000),
        }
        for key, data in objects.items():
            store.run_mc("pipe", f"local/{bucket}/{key}", data=data)
        for cache in (True, False):
            servers.append(NginxS3Gateway(tree, workdir, store.s3_port, bucket, store.access_key,
                                          store.secret_key, cache=cache))
        for gw in servers:
            label = f"cache={gw.cache}"
            check(len(gw.worker_pids()) == 2, f"{label}: 2 workers {gw.worker_pids()} (children {gw.pids()})")
            for key, data in objects.items():
                path = "/" + urllib.parse.quote(key)
                before = store.get_requests()
                status, body, _ = http_get(gw.port, path)
                first = store.get_requests() - before
                check(status == 200 and body == data,
                      f"{label}: GET {path} -> {status}, {len(body)} bytes, identical={body == data}, "
                      f"MinIO GetObject +{first}")
                status, body, _ = http_get(gw.port, path)
                second = store.get_requests() - before - first
                want = 0 if gw.cache else 1
                check(status == 200 and body == data and second == want,
                      f"{label}: second GET -> {status}, identical={body == data}, "
                      f"MinIO GetObject +{second} (want +{want})")
            # A Range request takes the @s3_sliced location (its own cache zone, 1m slices).
            key = [k for k, v in objects.items() if len(v) == 1_000_000][0]
            for attempt, want in ((1, 1), (2, 0 if gw.cache else 1)):
                before = store.get_requests()
                status, body, _ = http_get(gw.port, "/" + key, headers={"Range": "bytes=1000-1999"})
                got = store.get_requests() - before
                check(status == 206 and body == objects[key][1000:2000] and got == want,
                      f"{label}: Range GET #{attempt} -> {status}, {len(body)} bytes, "
                      f"identical={body == objects[key][1000:2000]}, MinIO GetObject +{got} (want +{want})")
            missing = "/no-such-" + secrets.token_hex(8)
            for attempt, want in ((1, 1), (2, 0 if gw.cache else 1)):
                before = store.get_requests()
                status, _, _ = http_get(gw.port, missing)
                got = store.get_requests() - before
                check(status == 404 and got == want,
                      f"{label}: missing key, GET #{attempt} -> {status}, MinIO GetObject +{got} (want +{want})")
            status, _, _ = http_get(gw.port, "/")
            check(status == 404, f"{label}: / (listing off) -> {status}")
        cached = sum(len(files) for _, _, files in os.walk(os.path.join(servers[0].dir, "cache")))
        uncached = sum(len(files) for _, _, files in os.walk(os.path.join(servers[1].dir, "cache")))
        check(cached >= 2 and uncached == 0,
              f"cache files on disk: cache=True {cached}, cache=False {uncached}")
        for gw in servers:
            with open(gw.error_log) as f:
                errors = [line for line in f if "[error]" in line or "[emerg]" in line or "[alert]" in line]
            check(not errors, f"cache={gw.cache}: error.log has no errors {errors[:3]}")
    except Exception as e:  # noqa: BLE001 - a self-test reports every failure
        check(False, f"{type(e).__name__}: {e}")
    finally:
        for gw in servers:
            gw.stop()
        if store:
            store.stop()
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("self-test " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="against a MinIO of its own")
    parser.add_argument("--tree", help="the nginx-s3-gateway tree (default: the installer's)")
    parser.add_argument("--minio", help="the minio binary, mc beside it (default: the installer's)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if not args.self_test:
        parser.print_help()
        return 2
    return self_test(args.tree, args.minio, args.keep)


if __name__ == "__main__":
    sys.exit(main())
