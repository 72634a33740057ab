"""Helpers for the job board and conductor tests: the board kinds, a scratch ZooKeeper tree per test.

(The TCP proxy that cuts a client off from ZooKeeper is in ``tests/tcp_proxy.py``.)"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pytest

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
