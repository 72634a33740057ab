"""The objects one server shares between requests: its settings, its persistence backend and its board."""

from __future__ import annotations

import threading
from typing import cast

from fastapi import Request

from flowkit.factory import allow_list
from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.persistence.backends import Backend
from flowkit.persistence.shared import ensure_schema
from flowkit.serve.settings import ServeSettings

__all__ = ["ServeState", "get_state"]


class ServeState:
    """Built once per app. The backend and the board are connected on first use, not at start, so a
    server whose database is down still starts, answers ``/healthz`` with the reason, and recovers."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._board: JobBoard | None = None
        self._backend: Backend | None = None
        self.stopping = threading.Event()
        """Set when the server is asked to stop: open event streams (the console's live updates) end,
        so a graceful shutdown is not held open by a browser tab."""

    @property
    def backend(self) -> Backend:
        """Persistence, its schema made current on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = ensure_schema(self.settings.persistence_url)
        return self._backend

    @property
    def board(self) -> JobBoard:
        """The board, connected on first use (again after a failed attempt)."""
        if self._board is None:
            with self._lock:
                if self._board is None:
                    s = self.settings
                    board = boards.fetch(s.board_name, s.board, persistence=s.persistence_url)
                    board.allow = allow_list(s.allow)
                    board.connect()
                    self._board = board
        return self._board

    def close(self) -> None:
        self.stopping.set()
        with self._lock:
            if self._board is not None:
                self._board.close()
                self._board = None


def get_state(request: Request) -> ServeState:
    """FastAPI dependency: the app's :class:`ServeState`."""
    return cast(ServeState, request.app.state.flowkit)
