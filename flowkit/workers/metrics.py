"""A worker's metrics (``flowkit-worker --metrics-port``) and the small HTTP server daemons expose
metrics and health on: ``/metrics`` (Prometheus text) and ``/healthz`` (JSON; 503 when unhealthy).

Imported only when ``--metrics-port`` is given: ``prometheus_client`` is the ``serve`` extra.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LOG = logging.getLogger("flowkit.metrics")

__all__ = ["Health", "WorkerMetrics", "serve"]

Health = Callable[[], tuple[bool, dict[str, str]]]
"""Says whether the process is healthy, and what each dependency answered."""


class WorkerMetrics:
    """A worker's requests in flight and finished; its dispatch calls :meth:`started` and :meth:`ended`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge("flowkit_worker_requests_in_flight", "Requests running now", registry=registry)
        self.done = PromCounter(
            "flowkit_worker_requests",
            "Requests finished, by task and outcome",
            ["task", "outcome"],
            registry=registry,
        )

    def started(self, task: str) -> None:
        self.in_flight.inc()

    def ended(self, task: str, outcome: str) -> None:
        self.in_flight.dec()
        self.done.labels(task, outcome).inc()


def serve(
    port: int, registry: CollectorRegistry, health: Health, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                ok, parts = health()
                body = json.dumps({"ok": ok, **parts}).encode()
                self._send(200 if ok else 503, "application/json", body)
            else:
                self._send(404, "text/plain", b"not found: /metrics or /healthz\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("metrics server: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="flowkit-metrics", daemon=True).start()
    return server
