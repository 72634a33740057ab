"""``board.post_flow(factory, store=...)``: the dozen lines TaskFlow users write to post a flow, as one call.

A conductor must rebuild the flow in another process, so the job carries no flow object: it names a
logbook and flow detail in persistence, whose ``meta`` records the factory (import path and JSON
arguments) and the store. The logbook is saved before the job is posted, or in the same transaction
(the SQL board on the persistence database), so a conductor never sees a job whose flow it cannot
find. Everything that could refuse the job (its name, its size on the board, its factory under the
board's ``allow`` list) is checked before the logbook is saved, so a refused post leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardError
from flowkit.factory import FactoryDetails, check_path, resolve_factory, save_factory_details
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.shared import ensure_schema

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.jobboard.job import Job

LOG = logging.getLogger(__name__)


def persistence_of(board: JobBoard) -> Backend:
    """The board's persistence backend (a URL is fetched once per process), schema upgraded once."""
    if board.persistence is None:
        raise JobBoardError(
            f"board {board.name!r} has no persistence backend: fetch it with persistence=BACKEND_OR_URL"
        )
    return ensure_schema(board.persistence)


def _default_name(factory: str | Callable[..., Any]) -> str:
    if isinstance(factory, str):
        return factory.rpartition(":")[2] or factory
    return getattr(factory, "__name__", None) or "flow"


def check_factories(board: JobBoard, book: LogBook | None, flow_detail: FlowDetail | str | None) -> None:
    """Under ``board.allow``, refuse a job whose flow detail names a factory a conductor with the
    same allow list would not run (resolved, never called). Flow details not at hand (a bare uuid
    not in ``book``) are left to the conductor, which checks again."""
    if board.allow is None:
        return
    if isinstance(flow_detail, FlowDetail):
        details = [flow_detail]
    elif book is not None:
        found = book.find(flow_detail) if isinstance(flow_detail, str) else None
        details = [found] if found is not None else list(book)
    else:
        details = []
    for fd in details:
        factory = FactoryDetails.from_flow_detail(fd)
        if factory is not None:
            resolve_factory(factory.name, allow=board.allow)


def post_flow(
    board: JobBoard,
    factory: str | Callable[..., Any],
    store: Mapping[str, Any] | None,
    factory_args: Sequence[Any],
    factory_kwargs: Mapping[str, Any] | None,
    name: str | None,
    priority: int,
    details: Mapping[str, Any] | None,
) -> Job:
    """See :meth:`flowkit.jobboard.JobBoard.post_flow`."""
    if isinstance(factory, str):
        check_path(factory)
    backend = persistence_of(board)
    job_name = name or _default_name(factory)
    book = LogBook(job_name)
    flow_detail = book.add(FlowDetail(job_name))
    recorded = save_factory_details(flow_detail, factory, factory_args, factory_kwargs)
    if recorded.name.startswith("__main__:"):
        LOG.warning(
            "job %r: its factory %s is defined in the program posting it; only a conductor running in "
            "this same program can build its flow (any other sets the job aside)",
            job_name,
            recorded.name,
        )
    job_details = dict(details or {})
    if store:
        flow_detail.meta["store"] = dict(store)
        job_details["store"] = dict(store)  # where TaskFlow's conductors look for it
    job = board._new_job(job_name, book, job_details, priority, flow_detail, recorded.as_meta())
    if board._post_with_logbook(job, book, backend):  # one transaction (the SQL board on the same database)
        return job
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    board._post(job)
    return job
