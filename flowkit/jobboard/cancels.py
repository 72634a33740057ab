"""What both boards share about cancelling a job: the checks on a request, and telling each cancel once.

A cancel is a request saved on the job (``board.cancel``): the SQL board keeps it in the job row's
``cancel_reason`` column, the ZooKeeper board in the job's record. The board that holds the claim on
the job tells its cancel listeners (the conductor) as soon as it sees the request; the conductor cancels
the job's engine, and once the flow is reverted ends the job CANCELLED (``board.mark_cancelled``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flowkit.exceptions import CancelRefused, JobBoardError, NotFound
from flowkit.names import check_name
from flowkit.states import JobState, job_is_final

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.jobboard.job import Job

UUID_LENGTH = 36
MAX_REASON = 1000
"""Longest cancel reason, in characters: it goes into the job's record and is shown in listings."""


def check_reason(job: Job, reason: object) -> str:
    """``reason`` if it can be saved with ``job``; a :class:`JobBoardError` saying why not otherwise."""
    if not isinstance(reason, str) or not reason.strip():
        raise JobBoardError(f"cancel of job {job}: the reason must be a non-empty string, got {reason!r}")
    return check_name(reason, f"cancel reason of job {job}", max_length=MAX_REASON)


def refuse(job: Job, state: JobState) -> JobBoardError:
    """The error for a cancel of a job that is over (or in a state this board cannot save one in)."""
    if job_is_final(state):
        return CancelRefused(f"job {job} is {state.value}: it is over, there is nothing to cancel")
    return CancelRefused(f"job {job} is {state.value}: this board cannot save a cancel request for it now")


def find_open_job(board: JobBoard, prefix: str, *, by_flow: bool = False) -> Job:
    """The one job on the board (unclaimed or claimed) whose uuid (flow uuid, ``by_flow``) starts with
    ``prefix``: operators type prefixes.

    None matches: :class:`NotFound`, except that a whole job uuid is then looked up among the jobs
    that are over too (for a cancel to say which state it is in); several: :class:`JobBoardError`
    naming them.
    """
    wanted = prefix.strip().lower()
    if not wanted:
        raise JobBoardError("give a uuid, or the start of one")

    def key(job: Job) -> str:
        return ((job.flow_uuid if by_flow else job.uuid) or "").lower()

    matches = [job for job in board.iterjobs(ensure_fresh=True) if key(job).startswith(wanted)]
    if len(matches) > 1:
        shown = ", ".join(str(job) for job in matches[:5]) + (" ..." if len(matches) > 5 else "")
        what = "flows of jobs" if by_flow else "jobs"
        raise JobBoardError(f"{prefix!r} matches {len(matches)} {what} on board {board.name!r}: {shown}")
    if matches:
        return matches[0]
    if not by_flow and len(wanted) == UUID_LENGTH:
        return board.get_job(wanted)
    raise NotFound(f"no job on board {board.name!r} that is not over matches {prefix!r}")


def cancel_flow(board: JobBoard, flow_uuid: str, reason: str) -> Job:
    """Cancel the flow detail ``flow_uuid`` (or a prefix): by cancelling the job on the board that runs it.

    A flow is cancelled where it runs: a conductor hears of it through its job. A flow that no job on
    this board runs (an engine embedded in some program, or nobody) cannot be reached from here:
    :class:`NotFound` says so (cancel it with ``engine.cancel()`` in its process).
    """
    try:
        job = find_open_job(board, flow_uuid, by_flow=True)
    except NotFound:
        raise NotFound(
            f"no job on board {board.name!r} runs a flow {flow_uuid!r}: a flow is cancelled through the "
            "job that runs it; one run by an engine outside a conductor is cancelled with engine.cancel() "
            "in its own process"
        ) from None
    return board.cancel(job, reason)


class Told:
    """The jobs whose cancel this board has told its listeners of, so each is told once per claim."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: set[str] = set()

    def first(self, job_uuid: str) -> bool:
        """True the first time a cancel of ``job_uuid`` is seen (until :meth:`forget`)."""
        with self._lock:
            if job_uuid in self._told:
                return False
            self._told.add(job_uuid)
            return True

    def forget(self, job_uuid: str) -> None:
        """The claim ended: a later claim of the job is told again."""
        with self._lock:
            self._told.discard(job_uuid)

    def keep_only(self, held: set[str]) -> None:
        with self._lock:
            self._told &= held
