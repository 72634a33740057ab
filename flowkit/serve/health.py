"""``/healthz`` and ``/metrics`` of ``flowkit serve``.

``/healthz`` asks the board and the database at once, each in a thread of its own bounded by
``health_timeout`` (a server that accepts connections and never answers must not hang the probe), and
answers 200 ``{"ok": true, ...}`` or 503 ``{"ok": false, "board": "why", ...}``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from flowkit.exceptions import StorageError
from flowkit.serve.state import ServeState, get_state

__all__ = ["Health", "check", "router"]

router = APIRouter()


class Health(BaseModel):
    """Whether the server can use its board and its database, and what each answered."""

    ok: bool
    board: str
    persistence: str


def _probe(attempt: Callable[[], object], timeout: float) -> str:
    """ "ok", or why ``attempt`` failed or did not answer within ``timeout`` seconds."""
    outcome: list[str] = []

    def run() -> None:
        try:
            attempt()
            outcome.append("ok")
        except Exception as exc:
            outcome.append(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])

    thread = threading.Thread(target=run, name="flowkit-health", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g}s"


def _persistence(state: ServeState) -> None:
    """One query now, without the backend's retrying (the shared backend may have validated long ago)."""
    from conductor.outage import probe

    state.backend  # noqa: B018 - a new database gets its schema here, once
    why = probe(state.settings.persistence_url)
    if why is not None:
        raise StorageError(why)


def check(state: ServeState) -> Health:
    """Probe the board and persistence side by side."""
    timeout = state.settings.health_timeout
    results: dict[str, str] = {}
    probes = {"board": lambda: state.board.fleet(), "persistence": lambda: _persistence(state)}
    threads = [
        threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, _probe(f, timeout)), daemon=True)
        for k, f in probes.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1)
    board, persistence = results.get("board", "no answer"), results.get("persistence", "no answer")
    return Health(ok=board == persistence == "ok", board=board, persistence=persistence)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
def healthz(state: Annotated[ServeState, Depends(get_state)]) -> JSONResponse:
    """200 when the board and the database answer, 503 (saying which did not) otherwise."""
    health = check(state)
    return JSONResponse(health.model_dump(), status_code=200 if health.ok else 503)


def registry_of(request: Request) -> CollectorRegistry:
    """The app's metrics registry, made on first scrape (board depth, fleet, flows by state)."""
    app = request.app
    registry: CollectorRegistry | None = getattr(app.state, "metrics", None)
    if registry is None:
        from flowkit.serve.metrics import BoardCollector

        state: ServeState = app.state.flowkit
        registry = CollectorRegistry()
        registry.register(BoardCollector(lambda: state.board, lambda: state.backend))
        app.state.metrics = registry
    return registry


@router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics (names start with ``flowkit_``)."""
    return Response(generate_latest(registry_of(request)), media_type=CONTENT_TYPE_LATEST)
