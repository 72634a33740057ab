"""Session-wide fixtures for the real services: PostgreSQL, RabbitMQ and ZooKeeper.

Each fixture probes its service when a test first asks for it (never at import time). A missing
service skips the test locally and fails it in CI (``CI=true``); see ``tests/services.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from tests.services import (
    HOST,
    POSTGRES_PORT,
    RABBITMQ_PORT,
    ZOOKEEPER_PORT,
    probe_tcp,
    probe_zookeeper,
    require_service,
)

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
