"""Saving and running the flows of ``tests.console_flows`` the way a conductor would, for the console
tests: a logbook, a flow detail that names its factory, and the engine on a background thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flowkit import engines
from flowkit.factory import build_flow, save_factory_details
from flowkit.persistence.backends import Backend
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
    backend: Backend, factory: str, gate_dir: Path, *, with_factory: bool = True
) -> tuple[FlowDetail, Background]:
    """Start ``factory``'s flow, saved to ``backend``, on a thread; its gated steps wait in ``gate_dir``."""
    book, fd = saved_flow(backend, factory, with_factory=with_factory)
    engine = engines.load(
        build_flow(factory), backend=backend, book=book, flow_detail=fd, store={"gate_dir": str(gate_dir)}
    )
    return fd, Background(engine.run, name=f"run-{fd.name}")


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)
