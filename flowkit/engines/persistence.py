"""Engines and persistence: the recorder ``engines.load(backend=...)`` builds, and resuming by factory.

A conductor must resume flows it did not create, in a process that never saw the flow object. So a
flow detail can name the factory that builds its flow (:class:`flowkit.factory.FactoryDetails`,
recorded by :func:`save_factory_details`); :func:`load_from_detail` rebuilds the flow from it and
loads an engine on the same flow detail, which then resumes where it stopped.

The backend cache and the factory record live below the engines (``flowkit.persistence.shared``,
``flowkit.factory``) so job boards can use them without importing an engine; they are re-exported
here under the names ``engines`` has always offered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import FactoryImportError, InvalidFlowError
from flowkit.factory import FactoryDetails, save_factory_details
from flowkit.flow import Flow
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.recorder import BackendRecorder
from flowkit.persistence.shared import backend_for

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

__all__ = [
    "backend_for",
    "flow_from_detail",
    "load_from_detail",
    "load_from_factory",
    "recorder_for",
    "save_factory_details",
]


def recorder_for(
    flow: Flow,
    backend: Backend | str,
    book: LogBook | None = None,
    flow_detail: FlowDetail | None = None,
    fence: int | None = None,
    saved: bool = False,
) -> BackendRecorder:
    """The recorder for one engine: a new flow detail (and logbook) unless ``flow_detail`` is given;
    with ``fence``, every write carries that fencing token; ``saved``: ``flow_detail`` must be saved
    already (NotFound when the engine is prepared otherwise)."""
    if flow_detail is None:
        flow_detail = FlowDetail(flow.name)
    if book is not None and book.find(flow_detail.uuid) is None:
        book.add(flow_detail)
    return BackendRecorder(backend_for(backend), flow_detail, book, fence, saved)


def load_from_detail(
    flow_detail: FlowDetail | str,
    store: Mapping[str, Any] | None = None,
    backend: Backend | str | None = None,
    allow: Iterable[str] | None = None,
    **load_options: Any,
) -> Engine:
    """Rebuild a flow from the factory its flow detail names, and load an engine that resumes it.

    ``flow_detail`` may be a uuid (then ``backend`` is required); without ``backend`` the engine
    resumes from the flow detail object and saves to memory only. ``store`` adds to (and overrides)
    the saved store. ``allow`` lists module prefixes the factory must be under. Other keyword
    arguments go to :func:`flowkit.engines.load` (``engine=``, ``executor=``, ``fence=`` the claim's
    fencing token...).
    """
    from flowkit.engines import load

    if isinstance(flow_detail, str):
        if backend is None:
            raise InvalidFlowError(f"load_from_detail({flow_detail!r}): a flow detail uuid needs backend=")
        with backend_for(backend).get_connection() as conn:
            flow_detail = conn.get_flow_detail(flow_detail)
    flow = flow_from_detail(flow_detail, allow=allow)
    if backend is None:  # resume from the flow detail object itself; saving goes to memory only
        from flowkit.persistence.backends.memory import MemoryBackend

        backend = MemoryBackend()
    return load(flow, store=store, backend=backend, flow_detail=flow_detail, **load_options)


def flow_from_detail(flow_detail: FlowDetail, allow: Iterable[str] | None = None) -> Flow:
    """The flow rebuilt by the factory ``flow_detail`` names (see :func:`save_factory_details`).

    ``allow`` lists module prefixes the factory must be under. A flow detail that names no factory is
    refused with :class:`~flowkit.exceptions.InvalidFlowError`.
    """
    details = FactoryDetails.from_flow_detail(flow_detail)
    if details is None:
        raise InvalidFlowError(
            f"Cannot rebuild the flow of flow detail {flow_detail.name!r} ({flow_detail.uuid}): it names "
            f"no factory (record one with engines.save_factory_details()); no factory information saved."
        )
    if ":" not in details.name:
        details = _from_dotted(details)
    try:
        return details.build(allow=allow)
    except InvalidFlowError as exc:
        if isinstance(exc.__cause__, ImportError):
            raise FactoryImportError(f"Could not import factory {details.name!r}: {exc}") from exc
        raise


def _from_dotted(details: FactoryDetails) -> FactoryDetails:
    """A factory recorded as TaskFlow records it (``package.module.function``) as flowkit's
    ``package.module:function`` (the last dot splits module and attribute, as TaskFlow's import does)."""
    module, _, attr = details.name.rpartition(".")
    if not module or not _IDENT.fullmatch(module) or not _IDENT.fullmatch(attr):
        raise FactoryImportError(
            f"Could not import factory {details.name!r}: not a 'package.module:attribute' path, nor "
            f"TaskFlow's dotted 'package.module.function'"
        )
    return FactoryDetails(f"{module}:{attr}", details.args, details.kwargs)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def load_from_factory(
    flow_factory: str | Callable[..., Any],
    factory_args: Sequence[Any] | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    store: Mapping[str, Any] | None = None,
    backend: Backend | str | None = None,
    book: LogBook | None = None,
    **load_options: Any,
) -> Engine:
    """Build a flow with ``flow_factory(*factory_args, **factory_kwargs)`` and load an engine for it
    whose flow detail records the factory, so that another process can resume it by
    :func:`load_from_detail`.

    ``flow_factory`` is a callable importable by path (not a lambda or nested function), or that
    path as a string; the arguments must be JSON. Without ``backend`` the flow detail is kept in
    memory. Other keyword arguments go to :func:`flowkit.engines.load`.
    """
    from flowkit.engines import load
    from flowkit.factory import build_flow

    args, kwargs = tuple(factory_args or ()), dict(factory_kwargs or {})
    try:
        details = FactoryDetails.of(flow_factory, args, kwargs)
    except InvalidFlowError as exc:
        if isinstance(flow_factory, str):
            raise
        shown = getattr(flow_factory, "__qualname__", repr(flow_factory))
        raise InvalidFlowError(f"Flow factory {shown!r} is not reimportable: {exc}") from exc
    flow = build_flow(details.name, *args, **kwargs)
    flow_detail = FlowDetail(flow.name)
    save_factory_details(flow_detail, details.name, args, kwargs)
    if backend is None:
        from flowkit.persistence.backends.memory import MemoryBackend

        backend = MemoryBackend()
    return load(flow, store=store, backend=backend, book=book, flow_detail=flow_detail, **load_options)
