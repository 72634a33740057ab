"""The one ASGI application of ``flowkit serve``: console at ``/``, REST under ``/api/v1``, ``/metrics``
and ``/healthz``.

When the settings carry a token, every ``/api`` request must send ``Authorization: Bearer TOKEN``
(compared in constant time); ``/healthz`` and ``/metrics`` stay open for probes and scrapers, and
say nothing but counts and reachability.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from flowkit.serve import console, errors, flows_api, health, ops_api
from flowkit.serve.settings import ServeSettings
from flowkit.serve.state import ServeState

__all__ = ["create_app"]


def create_app(settings: ServeSettings) -> FastAPI:
    """An app serving ``settings``; its OpenAPI document is at ``/openapi.json``."""
    state = ServeState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()  # the board's claims and sessions end with the server

    app = FastAPI(
        title="flowkit", summary="Flows, jobs and the fleet of a flowkit deployment", lifespan=lifespan
    )
    app.state.flowkit = state
    errors.install(app)
    if settings.token:
        _require_token(app, settings.token)
    app.include_router(flows_api.router, prefix="/api/v1")
    app.include_router(ops_api.router, prefix="/api/v1")
    app.include_router(health.router)
    app.include_router(console.router)
    return app


def _require_token(app: FastAPI, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/api"):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"detail": "this server needs a token: send 'Authorization: Bearer TOKEN'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)


def serve_forever(settings: ServeSettings, log_level: str = "info") -> None:
    """Run the app on ``settings.host``/``settings.port`` until SIGINT/SIGTERM.

    The stop signal first sets the app's ``stopping`` event, so the console's open event streams end
    and uvicorn's graceful shutdown does not wait for browser tabs to close."""
    import uvicorn

    app = create_app(settings)
    state: ServeState = app.state.flowkit

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            state.stopping.set()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level)).run()
