"""Engines and persistence: the recorder ``engines.load(backend=...)`` builds, and flow factories.

A conductor must resume flows it did not create, in a process that never saw the flow object. So a
flow detail can name the factory that builds its flow, by import path (``"mypkg.flows:make_cluster"``)
with JSON arguments: :func:`save_factory_details` records it, :func:`load_from_detail` imports it,
rebuilds the flow and loads an engine on the same flow detail, which then resumes where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import InvalidFlowError
from flowkit.flow import Flow
from flowkit.persistence.backends import Backend, fetch
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.recorder import BackendRecorder
from flowkit.persistence.rows import Codec

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

_BACKENDS: dict[str, Backend] = {}
_BACKENDS_LOCK = threading.Lock()

__all__ = ["load_from_detail", "recorder_for", "save_factory_details"]


def backend_for(backend: Backend | str) -> Backend:
    """A backend object; URLs are fetched once per process, so their connection pools are shared."""
    if isinstance(backend, Backend):
        return backend
    with _BACKENDS_LOCK:
        found = _BACKENDS.get(backend)
        if found is None:
            found = _BACKENDS[backend] = fetch(backend)
        return found


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


def _factory_path(factory: Any) -> str:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if module == "__main__":
        raise InvalidFlowError(
            f"factory {qualname!r} is defined in __main__, which another process cannot import: "
            f"move it into a module (or pass its 'module:name' path as a string)"
        )
    if not module or not qualname or "<" in qualname:
        raise InvalidFlowError(
            f"factory {factory!r} has no import path: use a module-level function or class method "
            f"(not a lambda or a nested function) so another process can import it"
        )
    return f"{module}:{qualname}"


def save_factory_details(
    flow_detail: FlowDetail,
    factory: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    backend: Backend | str | None = None,
) -> None:
    """Record in ``flow_detail.meta["factory"]`` how to rebuild its flow: ``factory(*args, **kwargs)``.

    ``factory`` is a callable importable by ``module:qualname`` (or that path as a string); the
    arguments must be JSON. With ``backend`` the flow detail is saved too (its logbook must be).
    """
    path = factory if isinstance(factory, str) else _factory_path(factory)
    if not isinstance(factory, str):
        from flowkit.factory import resolve_factory

        if resolve_factory(path) is not factory:
            raise InvalidFlowError(f"factory {factory!r} is not what {path!r} imports to")
    details = {"name": path, "args": list(args), "kwargs": dict(kwargs or {})}
    codec = backend_for(backend).codec if backend is not None else Codec()
    codec.dump(details, f"flow {flow_detail.name}", "the factory arguments")
    flow_detail.meta["factory"] = details
    if backend is not None:
        with backend_for(backend).get_connection() as conn:
            conn.update_flow_details(flow_detail)


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
    from flowkit.factory import build_flow

    if isinstance(flow_detail, str):
        if backend is None:
            raise InvalidFlowError(f"load_from_detail({flow_detail!r}): a flow detail uuid needs backend=")
        with backend_for(backend).get_connection() as conn:
            flow_detail = conn.get_flow_detail(flow_detail)
    details = flow_detail.meta.get("factory")
    if not isinstance(details, Mapping) or not isinstance(details.get("name"), str):
        raise InvalidFlowError(
            f"flow detail {flow_detail.name!r} ({flow_detail.uuid}) names no factory: "
            f"record one with engines.save_factory_details()"
        )
    flow = build_flow(details["name"], *details.get("args", ()), allow=allow, **details.get("kwargs", {}))
    if backend is None:  # resume from the flow detail object itself; saving goes to memory only
        from flowkit.persistence.backends.memory import MemoryBackend

        backend = MemoryBackend()
    return load(flow, store=store, backend=backend, flow_detail=flow_detail, **load_options)
