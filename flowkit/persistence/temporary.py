"""Throw-away logbooks and flow details: for tests and one-off runs that still want persistence.

TaskFlow code gets these from ``taskflow.utils.persistence_utils``; flowkit keeps them beside the
models they make, and ``flowkit.utils.persistence_utils`` re-exports them under TaskFlow's path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import FlowDetail, LogBook


def temporary_log_book(backend: Backend | None = None) -> LogBook:
    """A new logbook named ``tmp``, saved in ``backend`` when one is given."""
    book = LogBook("tmp")
    if backend is not None:
        with backend.get_connection() as conn:
            conn.save_logbook(book)
    return book


def temporary_flow_detail(
    backend: Backend | None = None, meta: Mapping[str, Any] | None = None
) -> tuple[LogBook, FlowDetail]:
    """A new logbook holding one new flow detail (with ``meta``), both saved in ``backend`` when
    one is given; pass them to ``engines.load(..., backend=backend, flow_detail=fd)``."""
    book = LogBook("tmp")
    flow_detail = book.add(FlowDetail("tmp-flow-detail", meta=meta))
    if backend is not None:
        with backend.get_connection() as conn:
            conn.save_logbook(book)
    return book, flow_detail


__all__ = ["temporary_flow_detail", "temporary_log_book"]
