"""A worker's metrics (``flowkit-worker --metrics-port``) and the small HTTP server daemons expose
metrics and health on: ``/metrics`` (Prometheus text) and ``/healthz`` (JSON; 503 when unhealthy).

Imported only when ``--metrics-port`` is given: ``prometheus_client`` is the ``serve`` extra.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

LOG = logging.getLogger("flowkit.metrics")

__all__ = ["Health", "WorkerMetrics", "serve", "start"]

Health = Callable[[], tuple[bool, dict[str, str]]]
"""Says whether the process is healthy, and what each dependency answered."""


class WorkerMetrics(Collector):
    """A worker's requests in flight and its threads, read from the worker at each scrape (no per-request
    cost), and its health: whether its broker connection is up."""

    def __init__(self, worker: Any) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "flowkit_worker_requests_in_flight", "Requests received and not answered yet"
        )
        in_flight.add_metric([], self._worker.in_flight)
        threads = GaugeMetricFamily(
            "flowkit_worker_threads", "Threads, and those lost to abandoned calls", labels=["kind"]
        )
        threads.add_metric(["total"], self._worker.threads)
        threads.add_metric(["stuck"], self._worker.stuck)
        yield from (in_flight, threads)

    def health(self) -> tuple[bool, dict[str, str]]:
        up = bool(self._worker.broker_connected)
        return up, {"broker": "ok" if up else "disconnected"}


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


def start(port: int, worker: Any, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """``flowkit-worker --metrics-port``: the worker's metrics and health on ``host:port``."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(worker)
    registry.register(metrics)
    return serve(port, registry, metrics.health, host)
