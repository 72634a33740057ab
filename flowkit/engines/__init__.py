"""Build and run engines: ``engines.load(flow, ...)`` and ``engines.run(flow, ...)``.

Engine kinds are chosen by name with explicit, typed keyword arguments:

- ``"serial"``: atoms run one at a time in the caller's thread (the default; cheapest per atom);
- ``"parallel"``: independent atoms run at the same time on ``executor``: ``"threads"`` (futurist
  thread pool, the default), ``"processes"`` (futurist process pool; tasks and their arguments are
  pickled) or any ``concurrent.futures.Executor`` you pass (you keep ownership of it);
- ``"worker-based"``: atoms run on remote workers over a message broker (``flowkit[amqp]``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent import futures
from typing import Any

from flowkit import extras
from flowkit.engines.dispatch import Dispatcher, ExecutorDispatcher, ThreadDispatcher, thread_pool
from flowkit.engines.engine import Engine
from flowkit.engines.persistence import load_from_detail, recorder_for, save_factory_details
from flowkit.exceptions import InvalidFlowError
from flowkit.flow import Flow
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import FlowDetail, LogBook

ENGINES = ("serial", "parallel", "worker-based")
EXECUTORS = ("threads", "processes")

__all__ = ["ENGINES", "EXECUTORS", "Engine", "load", "load_from_detail", "run", "save_factory_details"]


def _dispatcher(
    engine: str, executor: str | futures.Executor | None, max_workers: int | None
) -> tuple[Dispatcher | None, bool]:
    """The dispatcher for an engine kind, and whether tasks must pickle."""
    if engine == "serial":
        if executor is not None:
            raise InvalidFlowError("the serial engine takes no executor; use engine='parallel'")
        return Dispatcher(), False
    if engine != "parallel":
        raise InvalidFlowError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise InvalidFlowError(f"max_workers must be a positive int, got {max_workers!r}")
    if executor is None or executor == "threads":
        workers = max_workers or 8
        return ThreadDispatcher(workers, factory=lambda: thread_pool(workers)), False
    if executor == "processes":
        import multiprocessing

        import futurist

        # forkserver: the engine's process has threads (listeners, pools); forking it is unsafe.
        ctx = multiprocessing.get_context("forkserver")
        processes = ExecutorDispatcher(
            lambda: futurist.ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx), in_process=True
        )
        processes.capacity = max_workers or os.cpu_count() or 1  # the pool's own default
        return processes, True
    if isinstance(executor, futures.ThreadPoolExecutor):
        workers = max_workers or getattr(executor, "_max_workers", None) or 8
        return ThreadDispatcher(workers, executor=executor), False
    if isinstance(executor, futures.Executor):
        in_process = isinstance(executor, futures.ProcessPoolExecutor)
        given = ExecutorDispatcher(executor=executor, in_process=in_process)
        given.capacity = max_workers or getattr(executor, "_max_workers", None) or given.capacity
        return given, in_process
    raise InvalidFlowError(
        f"unknown executor {executor!r}; use 'threads', 'processes' or a concurrent.futures.Executor"
    )


def load(
    flow: Flow,
    store: Mapping[str, Any] | None = None,
    engine: str = "serial",
    executor: str | futures.Executor | None = None,
    max_workers: int | None = None,
    backend: Backend | str | None = None,
    book: LogBook | None = None,
    flow_detail: FlowDetail | None = None,
    fence: int | None = None,
    **options: Any,
) -> Engine:
    """An engine for ``flow``; nothing runs until ``run()``.

    ``store`` gives the flow's input values by symbol name. With ``backend`` (a backend or its URL)
    every state change is saved as it happens, to ``flow_detail`` (a new one, in ``book`` or a new
    logbook, when not given); loading the same flow detail again resumes it. ``fence`` is the fencing
    token of the job board claim the engine runs for (``job.fence``): once an engine with a higher
    token has loaded the flow detail, every write of this one is refused and the run stops with
    :class:`~flowkit.exceptions.ClaimLost` (see ``docs/jobboards.md``).
    """
    if backend is None and (book is not None or flow_detail is not None or fence is not None):
        raise InvalidFlowError(
            "book=, flow_detail= and fence= need backend= (a persistence backend or its URL)"
        )
    if backend is not None:
        recorder = recorder_for(flow, backend, book, flow_detail, fence)
        options = {**options, "recorder": recorder, "flow_uuid": recorder.flow_detail.uuid}
    if engine == "worker-based":
        extras.require("amqp", "the worker-based engine")
        from flowkit.workers import engine as worker_engine

        if executor is not None or max_workers is not None:
            raise InvalidFlowError("the worker-based engine takes no executor (workers have --threads)")
        return worker_engine.load(flow, store=store, **options)
    recorder_option = options.pop("recorder", None)
    flow_uuid = options.pop("flow_uuid", None)
    if options:
        raise InvalidFlowError(f"unknown engine option(s): {', '.join(sorted(options))}")
    dispatcher, check_pickle = _dispatcher(engine, executor, max_workers)
    eng = Engine(
        flow,
        store=store,
        dispatcher=dispatcher,
        recorder=recorder_option,
        flow_uuid=flow_uuid,
        check_pickle=check_pickle,
    )
    if isinstance(dispatcher, ExecutorDispatcher):
        dispatcher._on_progress = eng._progress_of_node
    return eng


def run(flow: Flow, store: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Load and run ``flow``; return every value provided (and the store)."""
    eng = load(flow, store=store, **kwargs)
    eng.run()
    return eng.storage.fetch_all()
