"""Operator verbs on flows: retry a REVERTED or FAILED flow, resume a SUSPENDED one, through a board.

Both post a job for the flow's own logbook and flow detail (the store saved with it goes with the
job), so a conductor runs it as any other job and the run stays one flow detail with one history.
``retry`` first resets the flow detail in persistence: every atom back to PENDING with its results,
failures and retry history forgotten, the flow's failures cleared, the flow PENDING; that is what
"from its start" means, and it is the same reset the engine makes of a REVERTED flow, done before
the job is posted so a FAILED flow (whose revert did not finish) is not reverted again. Atom uuids
are kept: tasks that use them as idempotency keys see the same keys.

A flow that already has a job on the board (unclaimed, claimed or set aside) is refused: two jobs
for one flow detail would race for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit.exceptions import InvalidStateError, JobBoardError
from flowkit.jobboard.posting import persistence_of
from flowkit.persistence.lookup import find_flow_detail
from flowkit.persistence.models import FlowDetail, Intention, RetryDetail
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.jobboard.job import Job

__all__ = ["RESUMABLE", "RETRYABLE", "resume_flow", "retry_flow"]

RETRYABLE = frozenset({FlowState.REVERTED, FlowState.FAILURE})
RESUMABLE = frozenset({FlowState.SUSPENDED})


def retry_flow(board: JobBoard, flow: str) -> Job:
    """Run the REVERTED or FAILED flow detail ``flow`` (uuid or unique prefix) again from its start."""
    fd = _checked(board, flow, RETRYABLE, "retry")
    for ad in fd:
        ad.state, ad.intention = AtomState.PENDING, Intention.EXECUTE
        ad.results = ad.failure = ad.revert_results = ad.revert_failure = None
        ad.started_at = ad.finished_at = None
        if isinstance(ad, RetryDetail):
            ad.history = type(ad.history)()
    fd.state, fd.failures = FlowState.PENDING, {}
    with persistence_of(board).get_connection() as conn:
        conn.update_flow_details(fd)
    return _post(board, fd)


def resume_flow(board: JobBoard, flow: str) -> Job:
    """Post a job that resumes the SUSPENDED flow detail ``flow`` (uuid or unique prefix)."""
    return _post(board, _checked(board, flow, RESUMABLE, "resume"))


def _checked(board: JobBoard, flow: str, allowed: frozenset[FlowState], verb: str) -> FlowDetail:
    fd = find_flow_detail(persistence_of(board), flow)
    for entry in board.listing(finished=False):
        job = entry.job
        if job.flow_uuid == fd.uuid or (job.flow_uuid is None and job.book_uuid == fd.parent_uuid):
            raise JobBoardError(
                f"cannot {verb} flow {fd.name!r} ({fd.uuid}): it already has job {job.uuid} ({entry.state})"
            )
    if fd.state not in allowed:
        wanted = " or ".join(sorted(allowed))
        state = fd.state.value if fd.state is not None else "PENDING"
        raise InvalidStateError("flow", f"{fd.name} ({fd.uuid}) is {state}, not {wanted}:", state, verb)
    return fd


def _post(board: JobBoard, fd: FlowDetail) -> Job:
    if fd.parent_uuid is None:
        raise JobBoardError(f"flow detail {fd.uuid} is in no logbook: nothing for a conductor to load")
    with persistence_of(board).get_connection() as conn:
        book = conn.get_logbook(fd.parent_uuid)
    store = fd.meta.get("store")
    details = {"store": dict(store)} if isinstance(store, dict) and store else {}
    return board.post(fd.name, book, details, flow_detail=fd.uuid)
