"""``engines.load(flow, engine="worker-based", ...)``: the core engine with a :class:`WorkerDispatcher`.

Nothing else changes: scheduling, storage, persistence, retry and revert stay in the engine, so a
worker-based flow resumes, suspends and runs under a conductor exactly like a local one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowkit.atom import check_timeout
from flowkit.engines.engine import Engine
from flowkit.exceptions import InvalidFlowError
from flowkit.flow import Flow
from flowkit.workers.dispatcher import WorkerDispatcher

DEFAULT_TRANSITION_TIMEOUT_S = 60.0


def load(
    flow: Flow,
    store: Mapping[str, Any] | None = None,
    *,
    transport: str | None = None,
    exchange: str = "flowkit",
    topics: Sequence[str] | None = None,
    transition_timeout: float = DEFAULT_TRANSITION_TIMEOUT_S,
    transport_options: dict[str, Any] | None = None,
    default_timeout: float | None = None,
    url: str | None = None,
    **engine_options: Any,
) -> Engine:
    """An engine whose tasks run on remote workers.

    ``transport`` is the broker URL (``url`` is accepted as TaskFlow's name for it); ``topics`` are the
    worker topics to look for tasks on; a request that no worker serves, accepts or answers within
    ``transition_timeout`` seconds fails its atom; requests wait in the engine while every worker is
    busy. ``default_timeout`` bounds the execute and revert of atoms without a ``timeout`` of their own
    (None: a call on a live worker may take as long as it takes). ``engine_options`` go to
    :class:`~flowkit.engines.engine.Engine` (``recorder``, ``flow_uuid``).
    """
    broker = transport or url
    if not broker:
        raise InvalidFlowError("the worker-based engine needs transport=<broker URL>, e.g. amqp://host//")
    if isinstance(topics, str):
        topics = [topics]
    if not topics or not all(isinstance(t, str) and t for t in topics):
        raise InvalidFlowError(f"the worker-based engine needs topics=[...] (non-empty str), got {topics!r}")
    if not isinstance(transition_timeout, int | float) or transition_timeout <= 0:
        raise InvalidFlowError(f"transition_timeout must be a positive number, got {transition_timeout!r}")
    if not exchange:
        raise InvalidFlowError("exchange must be a non-empty name")
    dispatcher = WorkerDispatcher(
        broker,
        exchange,
        topics,
        float(transition_timeout),
        transport_options=transport_options,
        default_timeout=check_timeout(default_timeout, "the worker-based engine's default_timeout"),
    )
    return Engine(flow, store=store, dispatcher=dispatcher, **engine_options)
