"""Saving and running the flows of ``tests.console_flows`` the way a conductor would, for the console
tests: a logbook, a flow detail that names its factory, and the engine on a background thread."""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from flowkit import engines
from flowkit.factory import build_flow, save_factory_details
from flowkit.persistence.backends import Backend
from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend
from flowkit.persistence.models import FlowDetail, LogBook
from tests.support.background import Background


def saved_flow(backend: Backend, factory: str, *, with_factory: bool = True) -> tuple[LogBook, FlowDetail]:
    """A logbook holding a new flow detail for ``factory``'s flow (which names it when ``with_factory``)."""
    flow = build_flow(factory)
    book, fd = LogBook(f"job-{flow.name}"), FlowDetail(flow.name)
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    if with_factory:
        save_factory_details(fd, factory, backend=backend)
    return book, fd


def run_in_background(
    backend: Backend, factory: str, gate_dir: Path, *, with_factory: bool = True, engine: str = "serial"
) -> tuple[FlowDetail, Background]:
    """Start ``factory``'s flow, saved to ``backend``, on a thread; its gated steps wait in ``gate_dir``."""
    book, fd = saved_flow(backend, factory, with_factory=with_factory)
    loaded = engines.load(
        build_flow(factory),
        engine=engine,
        backend=backend,
        book=book,
        flow_detail=fd,
        store={"gate_dir": str(gate_dir)},
    )
    return fd, Background(loaded.run, name=f"run-{fd.name}")


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


N_FLOWS = 10_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bulk_flows(backend: SQLAlchemyBackend) -> None:
    """10,000 flows in 5,000 logbooks (a posted job has a logbook of its own), two per second from
    :data:`T0`; one in fifty FAILURE, the rest RUNNING and SUCCESS. Inserted as rows: fast."""
    from flowkit.persistence.backends._tables import flowdetails, logbooks

    books = [str(uuidlib.uuid4()) for _ in range(N_FLOWS // 2)]
    flows = [
        {
            "uuid": str(uuidlib.uuid4()),
            "parent_uuid": books[i // 2],
            "name": f"flow-{i}",
            "state": "FAILURE" if i % 50 == 0 else ("RUNNING" if i % 2 else "SUCCESS"),
            "meta": None,
            "failures": None,
            "created_at": T0 + timedelta(seconds=i // 2),
            "updated_at": T0 + timedelta(seconds=i // 2),
        }
        for i in range(N_FLOWS)
    ]
    with backend.engine.begin() as c:
        book_rows = [
            {"uuid": u, "name": f"job-{n}", "meta": None, "created_at": T0, "updated_at": T0}
            for n, u in enumerate(books)
        ]
        c.execute(sa.insert(logbooks), book_rows)
        c.execute(sa.insert(flowdetails), flows)
        c.exec_driver_sql("ANALYZE")
