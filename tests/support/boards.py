"""Helpers for the job board and conductor tests: the board kinds, a scratch ZooKeeper tree per test.

(The TCP proxy that cuts a client off from ZooKeeper is in ``tests/tcp_proxy.py``.)"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit.jobboard import JobBoard

ROOT = "/flowkit-tests"


@contextlib.contextmanager
def zookeeper_tree(hosts: str, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """A fresh path for one test's board, deleted afterwards (as ``auth``'s user, for ACL tests)."""
    from kazoo.client import KazooClient

    auth_data = [("digest", f"{auth[0]}:{auth[1]}")] if auth else None
    client = KazooClient(hosts=hosts, timeout=4, auth_data=auth_data)
    client.start(timeout=10)
    try:
        client.ensure_path(ROOT)  # open ACL: a board with an ACL must not create the shared root
        path = f"{ROOT}/{secrets.token_hex(6)}"
        try:
            yield path
        finally:
            with contextlib.suppress(Exception):
                client.delete(path, recursive=True)
    finally:
        client.stop()
        client.close()


ZOOKEEPER_SESSION_TIMEOUT = 4.0
"""ZooKeeper's minimum session timeout: the board tests' scratch boards use it, so failovers are quick."""

BOARD_KINDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("zookeeper", marks=pytest.mark.zookeeper),
]
"""``@pytest.fixture(params=BOARD_KINDS)``: every board a conductor runs on, services marked."""


def board_url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty board of ``kind``: a SQLite file, an in-memory board, the session's PostgreSQL
    database (boards there are told apart by name) or a scratch ZooKeeper tree (the ``zk_url`` fixture)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/board.db"
    if kind == "memory":
        return f"memory://{secrets.token_hex(4)}"
    url: str = request.getfixturevalue({"postgresql": "postgres_url", "zookeeper": "zk_url"}[kind])
    return url


def board_is_empty(board: JobBoard) -> bool:
    """No job left on ``board``, read from the board now: ``job_count`` reads the copy ZooKeeper's watches
    keep, which may not show a job just posted yet (so it can say 0 before the job is even seen)."""
    return next(iter(board.iterjobs(ensure_fresh=True)), None) is None
