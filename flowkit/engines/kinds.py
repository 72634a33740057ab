"""Engine kinds by name: what ``engines.load(flow, engine=NAME, ...)`` builds.

A kind is a loader, ``loader(flow, store, *, recorder, flow_uuid, **its own options) -> Engine``,
that picks the kind's dispatcher and builds the one :class:`~flowkit.engines.engine.Engine`.
``"serial"`` and ``"parallel"`` are defined here. A kind that lives in a package above the engines
(``"worker-based"`` in ``flowkit.workers``) is registered by import path and imported the first
time it is asked for: the engines never import it (``docs/architecture.md``), and a process that
never loads it never imports its broker client.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, cast

from flowkit import extras
from flowkit.atom import check_timeout
from flowkit.engines.action_engine.engine import ParallelActionEngine, SerialActionEngine
from flowkit.engines.aio import DEFAULT_MAX_ASYNC, check_max_async
from flowkit.engines.dispatch import Dispatcher, ExecutorDispatcher, ThreadDispatcher, thread_pool
from flowkit.engines.engine import Engine
from flowkit.exceptions import InvalidFlowError, UnknownEngineError
from flowkit.flow import Flow
from flowkit.storage import Recorder

__all__ = ["EngineKind", "Loader", "kind", "names", "register"]

Loader = Callable[..., Engine]
"""``loader(flow, store, recorder=..., flow_uuid=..., **options) -> Engine`` (see the module docstring)."""


@dataclass(frozen=True)
class EngineKind:
    """One engine name and how to build it."""

    name: str
    loader: Loader | str
    """The loader, or its ``"module:function"`` path, imported on first use."""
    extra: str | None = None
    """The pip extra the kind needs (``flowkit[amqp]``), checked before importing the loader."""
    takes_executor: bool = True
    """False: ``executor=``/``max_workers=`` are refused (the kind runs its calls elsewhere)."""

    def resolve(self) -> Loader:
        """The loader itself; a path is imported now (after checking the extra is installed)."""
        if not isinstance(self.loader, str):
            return self.loader
        if self.extra is not None:
            extras.require(self.extra, f"the {self.name} engine")
        module, _, attr = self.loader.partition(":")
        return cast(Loader, getattr(importlib.import_module(module), attr))


_KINDS: dict[str, EngineKind] = {}


def register(engine_kind: EngineKind) -> None:
    """Make ``engines.load(flow, engine=engine_kind.name)`` build that kind (a name once only)."""
    if engine_kind.name in _KINDS:
        raise InvalidFlowError(f"engine kind {engine_kind.name!r} is registered already")
    _KINDS[engine_kind.name] = engine_kind


def names() -> tuple[str, ...]:
    """The registered engine names, in registration order."""
    return tuple(_KINDS)


def kind(name: str) -> EngineKind:
    """The kind registered as ``name``; :class:`InvalidFlowError` naming the choices otherwise."""
    found = _KINDS.get(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownEngineError(f"unknown engine {name!r}; choose one of {', '.join(_KINDS)}")
    return found


def check_options(loader: Loader, options: Mapping[str, Any]) -> None:
    """Refuse options the loader does not take with an error naming them (not a TypeError)."""
    accepted = _keywords(loader)
    unknown = [] if accepted is None else sorted(set(options) - accepted)
    if unknown:
        raise InvalidFlowError(f"unknown engine option(s): {', '.join(unknown)}")


@functools.cache
def _keywords(loader: Loader) -> frozenset[str] | None:
    """The keywords ``loader`` takes; None when it takes any (``**options``)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)


def _serial(
    flow: Flow,
    store: Mapping[str, Any] | None = None,
    *,
    recorder: Recorder | None = None,
    flow_uuid: str | None = None,
    default_timeout: float | None = None,
    max_async: int = DEFAULT_MAX_ASYNC,
) -> Engine:
    """Atoms run one at a time in the caller's thread (async ones on the engine's loop, one at a time)."""
    dispatcher = _bounded(Dispatcher(), default_timeout, max_async)
    return SerialActionEngine(
        flow, store=store, dispatcher=dispatcher, recorder=recorder, flow_uuid=flow_uuid
    )


def _parallel(
    flow: Flow,
    store: Mapping[str, Any] | None = None,
    *,
    executor: str | futures.Executor | None = None,
    max_workers: int | None = None,
    recorder: Recorder | None = None,
    flow_uuid: str | None = None,
    default_timeout: float | None = None,
    max_async: int = DEFAULT_MAX_ASYNC,
) -> Engine:
    """Independent atoms run at the same time on ``executor`` (see :mod:`flowkit.engines`); async atoms
    at the same time on the engine's event loop, up to ``max_async`` of them, holding no pool thread."""
    dispatcher, check_pickle = _executor_dispatcher(executor, max_workers)
    _bounded(dispatcher, default_timeout, max_async)
    return ParallelActionEngine(
        flow,
        store=store,
        dispatcher=dispatcher,
        recorder=recorder,
        flow_uuid=flow_uuid,
        check_pickle=check_pickle,
    )


def _bounded(dispatcher: Dispatcher, default_timeout: float | None, max_async: int) -> Dispatcher:
    """``dispatcher`` with the engine's ``default_timeout`` (atoms without a timeout of their own) and
    ``max_async`` (async calls at once on its loop), each checked here."""
    dispatcher.default_timeout = check_timeout(default_timeout, "the engine's default_timeout")
    dispatcher.aio.max_async = check_max_async(max_async)
    return dispatcher


EXECUTOR_ALIASES = {"thread": "threads", "threaded": "threads", "process": "processes"}
"""TaskFlow's other spellings of the two executor names, so its ``executor="threaded"`` runs as is."""


def _executor_dispatcher(
    executor: str | futures.Executor | None, max_workers: int | None
) -> tuple[Dispatcher, bool]:
    """The parallel engine's dispatcher for ``executor``, and whether tasks must pickle."""
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise InvalidFlowError(f"max_workers must be a positive int, got {max_workers!r}")
    if isinstance(executor, str):
        executor = EXECUTOR_ALIASES.get(executor, executor)
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


register(EngineKind("serial", _serial, takes_executor=False))
register(EngineKind("parallel", _parallel))
register(EngineKind("worker-based", "flowkit.workers.engine:load", extra="amqp", takes_executor=False))
