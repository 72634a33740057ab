"""A claimed job's flow rebuilt from persistence as a ready engine, or the reason it cannot be.

Apart from the loop because it is the one place that decides whether a job is malformed: each
``str`` returned here is a reason to set the job aside (it would fail the same way on every claim),
while errors of persistence or of the claim propagate, for the loop to give the job back or drop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.engines import Engine
from flowkit.engines.persistence import load_from_detail
from flowkit.exceptions import (
    ClaimLost,
    CompilationError,
    FlowkitError,
    InvalidFlowError,
    NotFound,
    NotSerializableError,
)
from flowkit.factory import FactoryDetails, check_allowed
from flowkit.jobboard import Job
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.rows import FLOWS


def find_flow(persistence: Backend, job: Job) -> tuple[str | None, FlowDetail | None]:
    """The job's flow detail, or why it cannot be found (a malformed job).

    A job posted by ``post_flow`` carries its flow detail's factory record: then the flow detail is
    not read here but stands as a reference (uuid, logbook, factory), which the engine's restore reads
    once, under the claim's fence, refusing it if it is not saved (:func:`load`: ``saved=True``). The
    read it saves was a transaction and about a seventh of a conductor's CPU per one-task job.
    """
    if job.book_uuid is None:
        return "malformed job: it names no logbook", None
    if job.flow_uuid is not None and job.factory is not None:
        meta = {FactoryDetails.META_KEY: job.factory}
        return None, FlowDetail(job.name, uuid=job.flow_uuid, meta=meta, parent_uuid=job.book_uuid)
    if job.flow_uuid is not None:
        found = _flow_row(persistence, job.flow_uuid)
        if found is None:
            return f"malformed job: flow detail {job.flow_uuid} is not in persistence", None
        return None, found
    try:
        with persistence.get_connection() as conn:
            book = conn.get_logbook(job.book_uuid)
    except NotFound:
        return f"malformed job: logbook {job.book_uuid} is not in persistence", None
    details = list(book)
    if len(details) != 1:
        return (
            f"malformed job: no flow_uuid and logbook {job.book_uuid} has {len(details)} flow details",
            None,
        )
    return None, details[0]


def _flow_row(persistence: Backend, uuid: str) -> FlowDetail | None:
    """The flow detail ``uuid`` without its atom details (None: not saved).

    Only its factory and meta are needed here: the engine's recorder reads the flow detail again, atoms
    and all, after raising the flow's fence in the same transaction, and that read is what the flow
    resumes from (one read of the atoms per job, not two).
    """
    with persistence.get_connection() as conn:
        rows = conn.run(lambda: conn.select_rows(FLOWS, "uuid", [uuid]))
        return conn.codec.flow_from(rows[0]) if rows else None


def load(
    job: Job,
    flow_detail: FlowDetail,
    *,
    persistence: Backend,
    conductor: str,
    allow: list[str] | None,
    engine: str,
    engine_options: Mapping[str, Any],
) -> tuple[str | None, Engine | None]:
    """An engine that resumes the job's flow, or why the flow cannot (or may not) be built.

    ``conductor`` names the conductor in the reason; ``allow`` is its allow list (None: any factory).
    """
    try:
        factory = FactoryDetails.from_flow_detail(flow_detail)
    except InvalidFlowError as exc:
        return f"malformed job: {exc}", None
    if factory is None:
        return f"malformed job: flow detail {flow_detail.uuid} names no factory", None
    path = factory.name
    try:
        check_allowed(path, allow)  # before anything imports the factory's module
    except InvalidFlowError as exc:
        allowed = ", ".join(allow or ()) or "none"
        return (
            f"factory {path!r} is not allowed on conductor {conductor!r} (allowed: {allowed}): {exc}",
            None,
        )
    store = job.details.get("store")
    try:
        loaded = load_from_detail(
            flow_detail,
            store=store if isinstance(store, Mapping) else None,
            backend=persistence,
            allow=allow,
            engine=engine,
            fence=job.fence,
            saved=True,  # a conductor never creates a flow detail: a job naming a gone one is malformed
            **engine_options,
        )
    except ClaimLost:
        raise
    except FlowkitError as exc:
        return f"cannot build the flow of factory {path!r}: {exc}", None
    # A flow that builds but cannot run (a cycle, a requirement nothing provides, a task that
    # does not pickle) fails the same way on every conductor: set it aside now rather than
    # abandon it max_attempts times. Errors of persistence (restoring the flow's state) are
    # not the job's fault and propagate, to be abandoned and retried.
    try:
        loaded.compile()
        loaded.validate()
    except (CompilationError, NotSerializableError) as exc:
        return f"the flow of factory {path!r} cannot run: {type(exc).__name__}: {exc}", None
    except NotFound:  # the restore found no such flow detail (see find_flow)
        return f"malformed job: flow detail {flow_detail.uuid} is not in persistence", None
    return None, loaded
