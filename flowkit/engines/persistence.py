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

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import InvalidFlowError
from flowkit.factory import FactoryDetails, save_factory_details
from flowkit.flow import Flow
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.recorder import BackendRecorder
from flowkit.persistence.shared import backend_for

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

__all__ = ["backend_for", "load_from_detail", "recorder_for", "save_factory_details"]


def recorder_for(
    flow: Flow,
    backend: Backend | str,
    book: LogBook | None = None,
    flow_detail: FlowDetail | None = None,
    fence: int | None = None,
) -> BackendRecorder:
    """The recorder for one engine: a new flow detail (and logbook) unless ``flow_detail`` is given;
    with ``fence``, every write carries that fencing token."""
    if flow_detail is None:
        flow_detail = FlowDetail(flow.name)
    if book is not None and book.find(flow_detail.uuid) is None:
        book.add(flow_detail)
    return BackendRecorder(backend_for(backend), flow_detail, book, fence)


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
    details = FactoryDetails.from_flow_detail(flow_detail)
    if details is None:
        raise InvalidFlowError(
            f"flow detail {flow_detail.name!r} ({flow_detail.uuid}) names no factory: "
            f"record one with engines.save_factory_details()"
        )
    flow = details.build(allow=allow)
    if backend is None:  # resume from the flow detail object itself; saving goes to memory only
        from flowkit.persistence.backends.memory import MemoryBackend

        backend = MemoryBackend()
    return load(flow, store=store, backend=backend, flow_detail=flow_detail, **load_options)
