"""A bounded HTTP load for the node tests: a fixed request rate for at most a fixed time, on
keep-alive connections as a real client pool holds them, every request recorded.

A failed request is counted as such, never retried: an answer other than the expected status,
a connection reset, a connection the server closed without answering, a timeout. A connection
the server asked to close (`Connection: close`) is reopened for the next request, as any client
does; that is not a failure.
"""

import collections
import http.client
import threading
import time
from dataclasses import dataclass, field

import conftest


@dataclass
class Tally:
    latencies: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    resets: int = 0
    reconnects: int = 0

    @property
    def requests(self):
        return len(self.latencies) + len(self.failures)

    def p99_ms(self):
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def summary(self):
        return (f"{self.requests} requests, {len(self.failures)} failed, {self.resets} connection resets, "
                f"p99 {self.p99_ms():.1f} ms, {self.reconnects} reconnects asked by the server")


class Load:
    """`connections` threads send requests at `rate` per second in all until `stop()` or
    `max_seconds`. `requests` is a list of (method, path, body, headers, expected status),
    taken in turn."""

    def __init__(self, port, requests, rate=120, connections=8, max_seconds=300, timeout=30):
        self.port, self.requests, self.timeout = port, requests, timeout
        self.interval = connections / rate
        self.deadline = time.monotonic() + max_seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.tally = Tally()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(connections)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join()
        return self.tally

    def snapshot(self):
        """The tally so far, and a fresh one from now on (one per phase of a test)."""
        with self.lock:
            tally, self.tally = self.tally, Tally()
        return tally

    def _record(self, latency=None, failure=None, reset=False):
        with self.lock:
            if failure is not None:
                self.tally.failures.append(failure)
            else:
                self.tally.latencies.append(latency)
            self.tally.resets += reset

    def _run(self, index):
        connection = None
        turn = index
        next_at = time.monotonic() + index * self.interval / len(self.threads)
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            method, path, body, headers, expected = self.requests[turn % len(self.requests)]
            turn += 1
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            started = time.monotonic()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (ConnectionResetError, BrokenPipeError) as e:
                self._record(failure=f"{method} {path}: {e!r}", reset=True)
                connection.close()
                connection = None
                continue
            except (OSError, http.client.HTTPException) as e:
                self._record(failure=f"{method} {path}: {e!r}")
                connection.close()
                connection = None
                continue
            if response.status != expected:
                self._record(failure=f"{method} {path}: {response.status} {answer[:160]!r}")
            else:
                self._record(latency=time.monotonic() - started)
            if response.will_close:
                with self.lock:
                    self.tally.reconnects += 1
                connection.close()
                connection = None
        if connection is not None:
            connection.close()


class Resizes:
    """Processing load: `clients` threads each sending `POST {base}/v1/image/resize?…` one after
    another until the block ends; `answers` counts the statuses. A refusal (503, which must carry
    Retry-After) makes its client wait 0.2 s, as a client honouring backpressure would."""

    def __init__(self, base, source, headers, clients, width=1600, timeout=180):
        self.answers = collections.Counter()
        # Why a request got no answer at all (status None): the client's error, kept for the report.
        self.errors = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._url = f"{base}/v1/image/resize?width={width}&source={source}"
        self._headers, self._timeout = {**headers, "Accept": "image/png"}, timeout
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()

    def _run(self):
        while not self._stop.is_set():
            status, headers, body = conftest.http("POST", self._url, None, self._headers, timeout=self._timeout)
            with self._lock:
                self.answers[status] += 1
                if status is None:
                    self.errors.append(f"{time.strftime('%H:%M:%S')} {body.decode(errors='replace')}")
            if status != 200:
                assert status != 503 or headers["Retry-After"], "a 503 without Retry-After"
                time.sleep(0.2)
