"""Prometheus metrics and a health endpoint for an ingest worker.

One registry per worker (several workers may live in one process in tests). The HTTP server
binds 127.0.0.1 unless configured otherwise, and serves ``/metrics`` (Prometheus text
format) and ``/healthz`` (JSON; 200 when the loop is alive and the store answers, else 503).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: The loop must have turned within this many seconds for the worker to be healthy.
STALL_SECONDS = 30.0


class Metrics:
    def __init__(self, worker: str = "0") -> None:
        self.registry = CollectorRegistry()
        labels = {"worker": worker}
        r = self.registry
        self.messages = Counter("ursprung_ingest_messages", "Bus messages consumed",
                                ["result"], registry=r).labels  # result: ok|dead
        self.consumed = Counter("ursprung_ingest_events_consumed", "Events decoded",
                                registry=r)
        self.written = Counter("ursprung_ingest_events_written",
                               "Events written to the store", registry=r)
        self.dead_letters = Counter("ursprung_ingest_dead_letters",
                                    "Messages or events sent to the dead-letter topic",
                                    registry=r)
        self.store_errors = Counter("ursprung_ingest_store_errors",
                                    "Failed store writes (retried)", registry=r)
        self.commits = Counter("ursprung_ingest_commits", "Offset commits", registry=r)
        self.rebalances = Counter("ursprung_ingest_rebalances",
                                  "Partition assignments and revocations", ["what"],
                                  registry=r).labels
        self.lag = Gauge("ursprung_ingest_lag", "Messages behind the end of the assigned "
                         "partitions", registry=r)
        self.waiting = Gauge("ursprung_ingest_waiting_events",
                             "Events waiting for their process to be resolvable", registry=r)
        self.batch_seconds = Histogram(
            "ursprung_ingest_batch_seconds", "Time to write one batch (with retries)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.info = labels
        self.loop_at = time.monotonic()
        self.store_ok = True
        self.assigned = 0
        self.started = time.monotonic()

    def beat(self) -> None:
        self.loop_at = time.monotonic()

    def health(self) -> tuple[bool, dict[str, Any]]:
        stalled = time.monotonic() - self.loop_at
        ok = stalled < STALL_SECONDS and self.store_ok
        return ok, {"status": "ok" if ok else "unhealthy", "worker": self.info["worker"],
                    "store_ok": self.store_ok, "loop_seconds_ago": round(stalled, 3),
                    "assigned_partitions": self.assigned,
                    "uptime_seconds": round(time.monotonic() - self.started, 1)}

    def value(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels or None)
        return v or 0.0


class MetricsServer:
    """``/metrics`` and ``/healthz`` over HTTP on (host, port); port 0 picks a free one."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> None:
        m = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body, status, ctype = generate_latest(m.registry), 200, CONTENT_TYPE_LATEST
                elif self.path.split("?")[0] in ("/healthz", "/health"):
                    ok, data = m.health()
                    body, status = json.dumps(data).encode(), 200 if ok else 503
                    ctype = "application/json"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="ursprung-metrics")

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
