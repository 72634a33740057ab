"""The one ASGI application of ``flowkit serve``: console at ``/``, REST under ``/api/v1``."""

from __future__ import annotations

from fastapi import FastAPI

from flowkit.serve import console, flows_api, ops_api
from flowkit.serve.settings import ServeSettings
from flowkit.serve.state import ServeState

__all__ = ["create_app"]


def create_app(settings: ServeSettings) -> FastAPI:
    """An app serving ``settings``; its OpenAPI document is at ``/openapi.json``."""
    app = FastAPI(title="flowkit", summary="Flows, jobs and the fleet of a flowkit deployment")
    app.state.flowkit = ServeState(settings)
    app.include_router(flows_api.router, prefix="/api/v1")
    app.include_router(ops_api.router, prefix="/api/v1")
    app.include_router(console.router)
    return app
