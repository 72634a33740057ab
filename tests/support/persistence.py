"""Helpers for the persistence tests: one backend of each kind, upgraded and empty, and small readers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook

BACKEND_KINDS = ["memory", "sqlite", "dir", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""``@pytest.fixture(params=BACKEND_KINDS)``: every backend, PostgreSQL marked (and skipped without it)."""

SQL_BACKEND_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""The SQLAlchemy backends alone: for tests of what only a SQL database does (statements, transactions)."""


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


def saved_new_flow(backend: Backend, name: str) -> tuple[LogBook, FlowDetail]:
    """A logbook holding one empty flow detail, both named ``name``, saved: what a job posts before an
    engine loads the flow detail by its uuid."""
    book, fd = LogBook(name), FlowDetail(name)
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    return book, fd


@contextlib.contextmanager
def recorded_statements(backend: Backend, event: str = "before_cursor_execute") -> Iterator[list[str]]:
    """The text of every statement the SQLAlchemy ``backend`` sends while the block runs, in order
    (transaction control included: ``BEGIN``, ``COMMIT``), as its engine's ``event`` tells them; the
    listener is removed afterwards, so the backend can be read back without adding to the list."""
    statements: list[str] = []
    sa_engine = backend.engine  # type: ignore[attr-defined]

    def statement(conn: sa.Connection, cursor: Any, text: str, *args: Any) -> None:
        statements.append(text)

    sa.event.listen(sa_engine, event, statement)
    try:
        yield statements
    finally:
        sa.event.remove(sa_engine, event, statement)


def saved_states(backend: Backend, uuid: str) -> dict[str, str]:
    return {ad.name: ad.state.value for ad in saved_flow(backend, uuid)}


def lines(path: Path) -> int:
    """How many lines a marker file has (0 when it does not exist)."""
    return len(path.read_text().splitlines()) if path.exists() else 0
