"""``engines.load(flow, engine="worker-based", ...)``: the core engine with a :class:`WorkerDispatcher`.

Nothing else changes: scheduling, storage, persistence, retry and revert stay in the engine, so a
worker-based flow resumes, suspends and runs under a conductor exactly like a local one.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from flowkit.engines.engine import Engine
from flowkit.flow import Flow
from flowkit.storage import Recorder
from flowkit.workers.dispatcher import WorkerDispatcher
from flowkit.workers.options import DEFAULT_TRANSITION_TIMEOUT_S, WorkerOptions, broker_url

__all__ = ["DEFAULT_TRANSITION_TIMEOUT_S", "WorkerOptions", "load"]


def load(
    flow: Flow,
    store: Mapping[str, Any] | None = None,
    *,
    transport: str | None = None,
    exchange: str = "flowkit",
    topics: Sequence[str] | str | None = None,
    transition_timeout: float = DEFAULT_TRANSITION_TIMEOUT_S,
    transport_options: Mapping[str, Any] | None = None,
    default_timeout: float | None = None,
    url: str | None = None,
    recorder: Recorder | None = None,
    flow_uuid: str | None = None,
) -> Engine:
    """An engine whose tasks run on remote workers.

    The keywords are :class:`~flowkit.workers.options.WorkerOptions`' fields (TaskFlow's ``url`` and
    bare transport names are read by :func:`~flowkit.workers.options.broker_url`), checked once
    here; ``recorder`` and ``flow_uuid`` go to :class:`~flowkit.engines.engine.Engine`. Every
    keyword is named, so ``engines.load`` refuses an unknown one with an error naming it.
    """
    options = WorkerOptions(
        transport=broker_url(transport, url),
        topics=topics or (),
        exchange=exchange,
        transition_timeout=transition_timeout,
        default_timeout=default_timeout,
        transport_options=transport_options or {},
    )
    dispatcher = WorkerDispatcher(options)
    engine = Engine(flow, store=store, dispatcher=dispatcher, recorder=recorder, flow_uuid=flow_uuid)
    dispatcher.id_source = functools.partial(_request_ids, weakref.ref(engine))
    return engine


def _request_ids(ref: weakref.ref[Engine]) -> dict[str, str]:
    """The flow detail's uuid and, under a conductor, the job's: what the workers log each atom with."""
    engine = ref()
    if engine is None:
        return {}
    ids = {"flow": engine.storage.flow_uuid}
    if engine.job_uuid is not None:
        ids["job"] = engine.job_uuid
    return ids
