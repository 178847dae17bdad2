"""Job-wide progress of the LLM calls, for a person watching a slow run.

The calls run in mapInPandas on executors, one async pool per partition, so
no single process sees the whole job. The driver runs a tiny HTTP counter
(``ProgressServer``); each pool's ``Reporter`` POSTs its deltas to it at most
every ``PUSH_EVERY_S`` seconds (and once at the end), and the driver logs one
line every ``every_s`` seconds:

    llm profile: requests 12/40 (30%), rows kept 55, truncated 0, failed 0,
    tokens/s 21.3, ETA 1m52s

Rows kept are the rows in replies that parsed (before the seed-copy and
vocabulary checks, which run after the calls). The counter binds to the
driver's host: 127.0.0.1 in local mode; on a cluster the address Spark gives
the driver (``spark.driver.host``), which executors reach already. A lost
POST loses only a progress tick, never a result: results go to
stage.llm_responses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)
PUSH_EVERY_S = 2.0
FIELDS = ("done", "failed", "truncated", "rows", "completion_tokens")


class Reporter:
    """Executor side: accumulate deltas, POST them to the driver now and then."""

    def __init__(self, url: str, every_s: float = PUSH_EVERY_S) -> None:
        self.url, self.every_s = url, every_s
        self.pending: Counter = Counter()
        self._last = time.monotonic()

    def add(self, **delta: int) -> None:
        self.pending.update(delta)
        if time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self.pending:
            return
        body = json.dumps(dict(self.pending)).encode()
        req = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=2):
                self.pending.clear()
        except OSError as exc:  # keep the counts; the next flush sends them
            log.debug("progress POST to %s failed: %s", self.url, exc)


class ProgressServer:
    """Driver side: sums the executors' deltas and logs the job-wide line."""

    def __init__(self, label: str, total: int, host: str = "127.0.0.1", every_s: float = 10.0):
        self.label, self.total, self.every_s = label, total, every_s
        self.counts: Counter = Counter()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's method name
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    delta = json.loads(self.rfile.read(n))
                    owner.add({k: int(delta.get(k, 0)) for k in FIELDS})
                    self.send_response(204)
                except (ValueError, AttributeError):
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._http.server_address[1]}/progress"

    def add(self, delta: dict[str, int]) -> None:
        with self._lock:
            self.counts.update(delta)

    def line(self) -> str:
        with self._lock:
            c = dict(self.counts)
        secs = max(time.monotonic() - self.started, 1e-9)
        done = c.get("done", 0)
        eta = "?" if not done else _duration(secs / done * max(self.total - done, 0))
        share = 100 * done / self.total if self.total else 100.0
        return (
            f"llm {self.label}: requests {done}/{self.total} ({share:.0f}%), rows kept "
            f"{c.get('rows', 0)}, truncated {c.get('truncated', 0)}, failed {c.get('failed', 0)}, "
            f"tokens/s {c.get('completion_tokens', 0) / secs:.1f}, ETA {eta}"
        )

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            log.info("%s", self.line())

    def __enter__(self) -> ProgressServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        threading.Thread(target=self._tick, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        log.info("%s", self.line())


def _duration(secs: float) -> str:
    secs = int(secs)
    if secs >= 3600:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"
