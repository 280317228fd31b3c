#!/usr/bin/env python3
"""The plain-libvips baseline of bench/processing.py: the least an HTTP resize service can do.

GET /<name>.jpg?w=512&h=512&q=80 answers the image at <root>/<name>.jpg shrunk to fit w x h
(never enlarged, EXIF orientation applied) as a JPEG of quality q without metadata, as imgproxy
strips it by default:
`pyvips.Image.thumbnail(path, w, height=h, size="down")` then `write_to_buffer(".jpg[Q=q,strip]")`.
Anything else is 400/404. Run with the venv of scripts/install-pyvips.sh (pyvips over Debian's
libvips, the same library imgproxy is built against here):

    vips-venv/bin/python bench/vips_server.py --root DIR --port 8080

Threads: one per connection (ThreadingHTTPServer). pyvips's cffi calls release the GIL, so
the libvips work of concurrent requests runs in parallel. The libvips operation cache is off
(it would answer a repeated thumbnail of the same file from memory) and each image is
processed by one libvips thread (`--vips-concurrency 1`), as imgproxy does by default, so
parallelism comes from concurrent requests only.
"""

import argparse
import http.server
import os
import sys
import urllib.parse

import pyvips


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    # The head and the body go out in two writes: without TCP_NODELAY, Nagle holds the body
    # back until the client's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    root = "."

    def log_message(self, format, *args):  # no per-request log line
        pass

    def answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        name = urllib.parse.unquote(url.path.lstrip("/"))
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            width, height = int(query.get("w", 512)), int(query.get("h", 512))
            quality = int(query.get("q", 80))
        except ValueError:
            return self.answer(400, b"bad parameter\n")
        if not name or "/" in name or name.startswith(".") or not 1 <= quality <= 100:
            return self.answer(400, b"bad name or quality\n")
        path = os.path.join(self.root, name)
        if not os.path.isfile(path):
            return self.answer(404, b"not found\n")
        try:
            image = pyvips.Image.thumbnail(path, width, height=height, size="down")
            body = image.write_to_buffer(f".jpg[Q={quality},strip]")
        except pyvips.Error as e:
            return self.answer(422, str(e).encode() + b"\n")
        self.answer(200, body, "image/jpeg")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder of the source images")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--vips-concurrency", type=int, default=1, help="libvips threads per image")
    args = parser.parse_args()
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(args.vips_concurrency)
    Handler.root = os.path.abspath(args.root)
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"vips_server: libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, "
          f"pyvips {pyvips.__version__} ({'API' if pyvips.API_mode else 'ABI'} mode), "
          f"serving {Handler.root} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
