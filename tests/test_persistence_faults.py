"""Database faults: cut the engine's connection to PostgreSQL mid-flow, with a TCP proxy in between.

The proxy (``tests/tcp_proxy.py``) forwards to the real server; ``cut()`` closes every connection
through it and refuses new ones until ``restore()``, which is what a PostgreSQL restart or a dropped
network looks like to the client. The server itself is never touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import StorageError
from flowkit.persistence import backends
from flowkit.persistence.backoff import Backoff
from flowkit.persistence.models import FlowDetail
from flowkit.states import FlowState
from tests.support.persistence import fresh_backend, saved_flow, saved_states
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    with TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as p:
        yield p


def _through(postgres_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(postgres_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{proxy.port}", parts.path, parts.query, ""))


class Step(Task):
    """Counts its runs; the step named ``cut_at`` cuts the database off while it runs."""

    def __init__(self, name: str, runs: list[str], on_run: Any = None) -> None:
        super().__init__(name=name)
        self.runs, self.on_run = runs, on_run

    def execute(self) -> str:
        self.runs.append(self.name)
        if self.on_run is not None and self.runs.count(self.name) == 1:
            self.on_run()
        return self.name


def _flow(runs: list[str], cut_at: str, on_cut: Any) -> LinearFlow:
    return LinearFlow("faulty").add(
        *(Step(f"t{i}", runs, on_cut if f"t{i}" == cut_at else None) for i in range(6))
    )


def test_the_flow_completes_when_the_database_comes_back(postgres_url: str, proxy: TcpProxy) -> None:
    direct = fresh_backend(postgres_url)
    backend = backends.fetch(_through(postgres_url, proxy), backoff=Backoff(timeout=30))
    runs: list[str] = []

    def outage() -> None:
        proxy.cut()
        threading.Timer(1.0, proxy.restore).start()

    fd = FlowDetail("faulty")
    started = time.monotonic()
    engines.load(_flow(runs, "t2", outage), backend=backend, flow_detail=fd).run()
    assert time.monotonic() - started >= 0.9  # it did wait for the database
    assert runs == [f"t{i}" for i in range(6)]  # every task exactly once
    assert proxy.accepted >= 2  # the engine reconnected
    assert saved_states(direct, fd.uuid) == {f"t{i}": "SUCCESS" for i in range(6)}
    assert saved_flow(direct, fd.uuid).state is FlowState.SUCCESS
    backend.close()
    direct.close()


def test_a_database_that_stays_away_stops_the_engine_and_the_flow_resumes_later(
    postgres_url: str, proxy: TcpProxy
) -> None:
    direct = fresh_backend(postgres_url)
    backend = backends.fetch(_through(postgres_url, proxy), backoff=Backoff(timeout=1.5))
    runs: list[str] = []
    fd = FlowDetail("faulty")
    started = time.monotonic()
    with pytest.raises(StorageError, match="unreachable"):
        engines.load(_flow(runs, "t2", proxy.cut), backend=backend, flow_detail=fd).run()
    assert time.monotonic() - started < 10  # bounded
    assert runs == ["t0", "t1", "t2"]  # nothing started after the write that failed
    # nothing saved is lost: t2's result never reached the database, so t2 is still RUNNING there
    assert saved_states(direct, fd.uuid) == {
        "t0": "SUCCESS",
        "t1": "SUCCESS",
        "t2": "RUNNING",
        "t3": "PENDING",
        "t4": "PENDING",
        "t5": "PENDING",
    }

    proxy.restore()
    with direct.get_connection() as conn:
        loaded = conn.get_flow_detail(fd.uuid)
    engines.load(_flow(runs, "", None), backend=backend, flow_detail=loaded).run()
    assert runs == ["t0", "t1", "t2", "t2", "t3", "t4", "t5"]  # t2 again (at least once), t0/t1 not
    assert saved_flow(direct, fd.uuid).state is FlowState.SUCCESS
    backend.close()
    direct.close()
