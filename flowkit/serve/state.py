"""The objects one server shares between requests: its settings, its persistence backend and its board."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from flowkit.persistence.backends import Backend
from flowkit.persistence.shared import ensure_schema
from flowkit.serve.settings import ServeSettings

__all__ = ["ServeState", "get_state"]


class ServeState:
    """Built once per app; the backend is shared with everything else in the process that names its URL."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.backend: Backend = ensure_schema(settings.persistence_url)


def get_state(request: Request) -> ServeState:
    """FastAPI dependency: the app's :class:`ServeState`."""
    return cast(ServeState, request.app.state.flowkit)
