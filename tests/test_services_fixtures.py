"""The service fixtures reach real servers, and a missing service skips locally but fails in CI."""

from __future__ import annotations

import socket
import uuid

import psycopg2
import pytest
from kazoo.client import KazooClient
from kombu import Connection

from tests.services import HOST, probe_tcp, probe_zookeeper, require_service


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    with psycopg2.connect(postgres_url, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1, current_database()")
        one, dbname = cur.fetchone()
    conn.close()
    assert one == 1
    assert dbname == postgres_url.rsplit("/", 1)[1]
    assert dbname.startswith("flowkit_test_")


@pytest.mark.rabbitmq
def test_rabbitmq_url_connects(rabbitmq_url: str) -> None:
    conn = Connection(rabbitmq_url, connect_timeout=5)
    try:
        conn.connect()
        assert conn.connected
    finally:
        conn.release()


@pytest.mark.zookeeper
def test_zookeeper_hosts_connects(zookeeper_hosts: str) -> None:
    client = KazooClient(hosts=zookeeper_hosts, timeout=10)
    client.start(timeout=15)
    root = f"/flowkit-test-{uuid.uuid4().hex}"
    try:
        client.create(root)
        node = client.create(f"{root}/node", b"hello", ephemeral=True)
        data, stat = client.get(node)
        assert data == b"hello"
        assert stat.ephemeralOwner == client.client_id[0]
        client.delete(node)
        assert client.exists(node) is None
    finally:
        client.delete(root, recursive=True)
        client.stop()
        client.close()


def test_require_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Nothing is not available: probe said no"):
        require_service("Nothing", False, "probe said no")


def test_require_service_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Nothing is not available: probe said no"):
        require_service("Nothing", False, "probe said no")


@pytest.mark.parametrize("ci", ["true", ""])
def test_require_service_passes_when_ok(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    require_service("Something", True, "unused")


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def test_probes_say_why_a_service_is_missing() -> None:
    port = _closed_port()
    tcp = probe_tcp(HOST, port, timeout=0.5)
    assert not tcp.ok
    assert f"{HOST}:{port}" in tcp.reason
    zookeeper = probe_zookeeper(HOST, port, timeout=0.5)
    assert not zookeeper.ok
    assert "ruok" in zookeeper.reason
