"""Fixtures for the real services (PostgreSQL, RabbitMQ, ZooKeeper) and the job boards built on them.

Each service fixture probes its service when a test first asks for it (never at import time). A missing
service skips the test locally and fails it in CI (``CI=true``); see ``tests/services.py``.

``backend`` is an upgraded, empty persistence backend of each kind (memory, SQLite, directory,
PostgreSQL); a module narrows the kinds by overriding ``backend_kind``, or pins one by overriding
``backend``. ``board`` is a connected, empty job board of each kind a conductor
runs on (``board_url`` is parametrised over SQLite, PostgreSQL and ZooKeeper); a module pins one kind
by overriding ``board_url``, and the flows' database by overriding ``persistence_url``.

Two fixtures serve the engine tests: ``process_pool`` (one forkserver pool per module) and ``journal``
(the file a test's tasks record their calls in).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import pytest
from psycopg2 import sql

from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.persistence.backends import Backend
from tests.services import (
    HOST,
    POSTGRES_PORT,
    RABBITMQ_PORT,
    ZOOKEEPER_PORT,
    probe_tcp,
    probe_zookeeper,
    require_service,
)
from tests.support.boards import BOARD_KINDS, ZOOKEEPER_SESSION_TIMEOUT, board_url_for, zookeeper_tree
from tests.support.conductors import Conductors
from tests.support.dispatchers import forkserver_pool
from tests.support.journal import Journal
from tests.support.persistence import BACKEND_KINDS, backend_url, fresh_backend

if TYPE_CHECKING:
    from kazoo.client import KazooClient

# The local cluster trusts loopback connections; which superuser role it has depends on the machine.
POSTGRES_ROLES = ("postgres", "root")


def _postgres_admin_connection() -> tuple[str, psycopg2.extensions.connection]:
    """Connect to the ``postgres`` database as the first role that works; return (role, connection)."""
    errors = []
    for role in POSTGRES_ROLES:
        try:
            conn = psycopg2.connect(
                host=HOST, port=POSTGRES_PORT, user=role, dbname="postgres", connect_timeout=5
            )
        except psycopg2.OperationalError as exc:
            errors.append(f"as {role}: {str(exc).strip()}")
            continue
        conn.autocommit = True
        return role, conn
    require_service("PostgreSQL", False, f"cannot log in to {HOST}:{POSTGRES_PORT}: " + "; ".join(errors))
    raise AssertionError("unreachable: require_service skips or fails")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database made for this test session and dropped at its end."""
    probe = probe_tcp(HOST, POSTGRES_PORT)
    require_service("PostgreSQL", probe.ok, probe.reason)
    role, admin = _postgres_admin_connection()
    dbname = f"flowkit_test_{secrets.token_hex(4)}"
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        yield f"postgresql://{role}@{HOST}:{POSTGRES_PORT}/{dbname}"
    finally:
        with admin.cursor() as cur:
            # FORCE ends connections a test left open, so the database never outlives the session.
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        admin.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """AMQP URL of the local RabbitMQ broker (default vhost, guest/guest)."""
    probe = probe_tcp(HOST, RABBITMQ_PORT)
    require_service("RabbitMQ", probe.ok, probe.reason)
    return f"amqp://guest:guest@{HOST}:{RABBITMQ_PORT}//"


@pytest.fixture(scope="session")
def zookeeper_hosts() -> str:
    """Connection string (``host:port``) of the local ZooKeeper server, for ``KazooClient(hosts=...)``."""
    probe = probe_zookeeper(HOST, ZOOKEEPER_PORT)
    require_service("ZooKeeper", probe.ok, probe.reason)
    return f"{HOST}:{ZOOKEEPER_PORT}"


@pytest.fixture
def zk_url(zookeeper_hosts: str) -> Iterator[str]:
    """A board URL on a scratch ZooKeeper tree (deleted afterwards), with the minimum session timeout."""
    with zookeeper_tree(zookeeper_hosts) as path:
        yield f"zookeeper://{zookeeper_hosts}{path}?timeout={ZOOKEEPER_SESSION_TIMEOUT:g}"


@pytest.fixture(params=BOARD_KINDS)
def board_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty board of each kind (PostgreSQL's is the session database: use ``board_name``)."""
    return board_url_for(request.param, request, tmp_path)


@pytest.fixture
def board_name() -> str:
    """A fresh board name: boards sharing a SQL database are told apart by name."""
    return f"board-{secrets.token_hex(4)}"


@pytest.fixture
def persistence_url(tmp_path: Path) -> str:
    """Where the boards' flows are saved: a SQLite file of the test's own."""
    return f"sqlite:///{tmp_path}/flows.db"


@pytest.fixture
def board(board_url: str, board_name: str, persistence_url: str) -> Iterator[JobBoard]:
    """A connected board at ``board_url``, posting flows to ``persistence_url``; closed afterwards."""
    made = boards.fetch(board_name, board_url, persistence=persistence_url)
    made.connect()
    yield made
    made.close()


@pytest.fixture
def conductors(tmp_path: Path, persistence_url: str) -> Iterator[Conductors]:
    """Conductor processes saving flows to ``persistence_url``; any left running are killed afterwards."""
    made = Conductors(tmp_path, persistence_url)
    yield made
    made.close()


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Which kinds ``backend`` is made of: every one. A module that tests what only some backends do
    overrides this fixture with fewer params (``SQL_BACKEND_KINDS``), and keeps ``backend`` as it is."""
    return str(request.param)


@pytest.fixture
def backend(backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An upgraded, empty persistence backend of each ``backend_kind``; closed afterwards."""
    made = fresh_backend(backend_url(backend_kind, request, tmp_path))
    yield made
    made.close()


@pytest.fixture(scope="module")
def process_pool() -> Iterator[futures.ProcessPoolExecutor]:
    """One forkserver pool per module that asks for it (``options_for``'s ``processes`` dispatcher):
    starting processes is what makes that dispatcher slow, so its tests share one."""
    with forkserver_pool() as pool:
        yield pool


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """A journal file of the test's own, for its tasks to record each call in from any thread or process
    (the flows take its path from the store, as ``{"journal": str(journal)}``). Named ``<tmp_path>/journal``:
    the crashed child of ``tests.support.cancel_flows`` writes there too, given only the directory."""
    return Journal(tmp_path / "journal")


@pytest.fixture
def zk_path(zookeeper_hosts: str) -> Iterator[str]:
    """A scratch ZooKeeper path for one test (deleted afterwards)."""
    with zookeeper_tree(zookeeper_hosts) as path:
        yield path


@pytest.fixture
def zk_client(zookeeper_hosts: str) -> Iterator[KazooClient]:
    """A plain kazoo client, to look at or tamper with the nodes a board keeps."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zookeeper_hosts, timeout=4)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()
