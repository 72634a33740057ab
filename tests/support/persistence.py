"""Helpers for the persistence tests: one backend of each kind, upgraded and empty, and small readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail

BACKEND_KINDS = ["memory", "sqlite", "dir", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""``@pytest.fixture(params=BACKEND_KINDS)``: every backend, PostgreSQL marked (and skipped without it)."""


def backend_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/flows.db"
    if kind == "dir":
        return f"dir://{tmp_path}/books"
    url: str = request.getfixturevalue("postgres_url")
    return url


def fresh_backend(url: str) -> Backend:
    """The backend at ``url``, its schema upgraded and every table emptied (the PostgreSQL database is
    shared by the session)."""
    backend = backends.fetch(url)
    with backend.get_connection() as conn:
        conn.upgrade()
        conn.clear_all()
    return backend


def saved_flow(backend: Backend, uuid: str) -> FlowDetail:
    """The flow detail as the database has it now (a new connection, nothing cached)."""
    with backend.get_connection() as conn:
        return conn.get_flow_detail(uuid)


def saved_states(backend: Backend, uuid: str) -> dict[str, str]:
    return {ad.name: ad.state.value for ad in saved_flow(backend, uuid)}


def lines(path: Path) -> int:
    """How many lines a marker file has (0 when it does not exist)."""
    return len(path.read_text().splitlines()) if path.exists() else 0
