"""A bounded HTTP load for the node tests: a fixed request rate for at most a fixed time, on
keep-alive connections as a real client pool holds them, every request recorded.

A failed request is counted as such, never retried: an answer other than the expected status,
a connection reset, a connection the server closed without answering, a timeout. A connection
the server asked to close (`Connection: close`) is reopened for the next request, as any client
does; that is not a failure.
"""

import http.client
import threading
import time
from dataclasses import dataclass, field


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
