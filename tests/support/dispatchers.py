"""The four places an engine runs its atoms, as the options ``engines.load`` takes: serial, parallel on
threads, parallel on a forkserver process pool, and worker-based over kombu's in-memory transport (a
worker on a thread of this process).

Tests that hold one behaviour on every dispatcher parametrize over :data:`KINDS` and get each kind's
options from :func:`options_for`. The pool and the worker are costly to start, so a module shares one
of each through module-scoped fixtures: ``process_pool`` (conftest's, made with :func:`forkserver_pool`)
and its own ``worker_exchange`` (made with :func:`served_exchange`, serving the module's tasks); and
:func:`options_for` asks for them only for the kinds that use them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import uuid
from collections.abc import Iterable, Iterator
from concurrent import futures
from typing import Any

import pytest

from tests.support.workers import MEMORY_OPTIONS, MEMORY_TRANSPORT, memory_worker

KINDS = ("serial", "threads", "processes", "workers")


@contextlib.contextmanager
def forkserver_pool(max_workers: int = 2) -> Iterator[futures.ProcessPoolExecutor]:
    """A process pool whose workers start from a clean forkserver, not a fork of the test process."""
    ctx = multiprocessing.get_context("forkserver")
    with futures.ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx) as pool:
        yield pool


@contextlib.contextmanager
def served_exchange(prefix: str, topic: str, tasks: Iterable[Any], threads: int) -> Iterator[str]:
    """A worker serving ``tasks`` on ``topic`` over ``memory://`` for the block; yields its exchange, named
    ``prefix`` and a random part so that modules running workers side by side never share one."""
    exchange = f"{prefix}-{uuid.uuid4().hex[:12]}"
    with memory_worker(exchange, topic, tasks, threads=threads):
        yield exchange


def worker_options(
    exchange: str, topic: str, transition_timeout: float = 10.0, transport: str = MEMORY_TRANSPORT
) -> dict[str, Any]:
    """The options of a worker-based engine that sends its atoms to the worker on ``exchange`` over
    ``transport`` (``memory://`` unless a broker's URL is given; it alone gets the quick polling)."""
    options: dict[str, Any] = {
        "engine": "worker-based",
        "transport": transport,
        "exchange": exchange,
        "topics": [topic],
        "transition_timeout": transition_timeout,
    }
    if transport == MEMORY_TRANSPORT:
        options["transport_options"] = MEMORY_OPTIONS
    return options


def options_for(
    kind: str, request: pytest.FixtureRequest, *, topic: str, max_workers: int, transition_timeout: float
) -> dict[str, Any]:
    """The options for dispatcher ``kind`` (one of :data:`KINDS`): ``max_workers`` threads, the module's
    ``process_pool`` fixture, or its ``worker_exchange`` fixture's worker on ``topic``."""
    if kind == "serial":
        return {"engine": "serial"}
    if kind == "threads":
        return {"engine": "parallel", "executor": "threads", "max_workers": max_workers}
    if kind == "processes":
        return {"engine": "parallel", "executor": request.getfixturevalue("process_pool")}
    assert kind == "workers", kind
    return worker_options(request.getfixturevalue("worker_exchange"), topic, transition_timeout)
