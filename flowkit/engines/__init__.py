"""Build and run engines: ``engines.load(flow, ...)`` and ``engines.run(flow, ...)``.

Engine kinds are chosen by name with explicit, typed keyword arguments:

- ``"serial"``: atoms run one at a time in the caller's thread (the default; cheapest per atom);
- ``"parallel"``: independent atoms run at the same time on ``executor``: ``"threads"`` (futurist
  thread pool, the default), ``"processes"`` (futurist process pool; tasks and their arguments are
  pickled) or any ``concurrent.futures.Executor`` you pass (you keep ownership of it);
- ``"worker-based"``: atoms run on remote workers over a message broker (``flowkit[amqp]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent import futures
from typing import Any

from flowkit.atom import Atom
from flowkit.engines import kinds
from flowkit.engines.engine import Engine
from flowkit.engines.persistence import (
    flow_from_detail,
    load_from_detail,
    load_from_factory,
    recorder_for,
    save_factory_details,
)
from flowkit.exceptions import InvalidFlowError, InvalidFlowTypeError
from flowkit.flow import Flow
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import FlowDetail, LogBook

ENGINES = kinds.names()
EXECUTORS = ("threads", "processes")

__all__ = [
    "ENGINES",
    "EXECUTORS",
    "Engine",
    "flow_from_detail",
    "load",
    "load_from_detail",
    "load_from_factory",
    "run",
    "save_factory_details",
]


def _engine_conf(conf: Any) -> dict[str, Any]:
    """TaskFlow's ``engine_conf``: an engine name, or a dict of options with the name under "engine"."""
    if isinstance(conf, str):
        return {"engine": conf}
    if isinstance(conf, Mapping):
        return dict(conf)
    raise InvalidFlowError(f"engine_conf must be an engine name or a dict of options, got {conf!r}")


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
    defer_reverts: bool | None = None,
    saved: bool = False,
    **options: Any,
) -> Engine:
    """An engine for ``flow``; nothing runs until ``run()``.

    ``store`` gives the flow's input values by symbol name. With ``backend`` (a backend or its URL)
    every state change is saved as it happens, to ``flow_detail`` (a new one, in ``book`` or a new
    logbook, when not given); loading the same flow detail again resumes it. ``fence`` is the fencing
    token of the job board claim the engine runs for (``job.fence``): once an engine with a higher
    token has loaded the flow detail, every write of this one is refused and the run stops with
    :class:`~flowkit.exceptions.ClaimLost` (see ``docs/jobboards.md``). ``saved=True``: ``flow_detail``
    is a reference to one saved already (a conductor's, from a job): preparing the engine raises
    :class:`~flowkit.exceptions.NotFound`, writing nothing, when persistence has no such flow detail.

    ``defer_reverts`` is accepted for TaskFlow's sake and changes nothing: flowkit always defers a
    retry controller's REVERT to the enclosing controller, and with none left the whole flow reverts
    (TaskFlow's ``defer_reverts=True``; its default would leave the atoms outside the subflow done).
    The engine's :attr:`~flowkit.engines.engine.Engine.options` keeps the options given.
    """
    if not isinstance(flow, Flow | Atom):
        raise InvalidFlowTypeError(
            f"engines.load needs a flow or an atom, got {type(flow).__name__} {flow!r}"
        )
    if "engine_conf" in options:  # TaskFlow's older form: the engine's name and options in one dict
        conf = {"engine": engine, **_engine_conf(options.pop("engine_conf")), **options}
        return load(flow, store, executor=executor, max_workers=max_workers, backend=backend, book=book,
                    flow_detail=flow_detail, fence=fence, defer_reverts=defer_reverts, saved=saved,
                    **conf)  # fmt: skip
    if backend is None and (book is not None or flow_detail is not None or fence is not None):
        raise InvalidFlowError(
            "book=, flow_detail= and fence= need backend= (a persistence backend or its URL)"
        )
    if defer_reverts is not None and not isinstance(defer_reverts, bool):
        raise InvalidFlowError(f"defer_reverts must be True or False, got {defer_reverts!r}")
    given = dict(options)
    if executor is not None:
        given["executor"] = executor
    if max_workers is not None:
        given["max_workers"] = max_workers
    if defer_reverts is not None:
        given["defer_reverts"] = defer_reverts
    chosen = kinds.kind(engine)
    if not chosen.takes_executor and (executor is not None or max_workers is not None):
        raise InvalidFlowError(
            f"the {engine} engine takes no executor or max_workers (those are for engine='parallel')"
        )
    if chosen.takes_executor:
        options = {**options, "executor": executor, "max_workers": max_workers}
    loader = chosen.resolve()
    kinds.check_options(loader, options)  # before a recorder exists: a refused load saves nothing
    if backend is not None:
        recorder = recorder_for(flow, backend, book, flow_detail, fence, saved)
        options = {**options, "recorder": recorder, "flow_uuid": recorder.flow_detail.uuid}
    eng = loader(flow, store, **options)
    eng.options = given
    eng.kind = engine
    return eng


def run(flow: Flow, store: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Load and run ``flow``; return every value provided (and the store)."""
    eng = load(flow, store=store, **kwargs)
    eng.run()
    return eng.storage.fetch_all()
