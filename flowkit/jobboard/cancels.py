"""What both boards share about cancelling a job: the checks on a request, and telling each cancel once.

A cancel is a request saved on the job (``board.cancel``): the SQL board keeps it in the job row's
``cancel_reason`` column, the ZooKeeper board in the job's record. The board that holds the claim on
the job tells its cancel listeners (the conductor) as soon as it sees the request; the conductor cancels
the job's engine, and once the flow is reverted ends the job CANCELLED (``board.mark_cancelled``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flowkit.exceptions import JobBoardError
from flowkit.names import check_name
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.job import Job

MAX_REASON = 1000
"""Longest cancel reason, in characters: it goes into the job's record and is shown in listings."""


def check_reason(job: Job, reason: object) -> str:
    """``reason`` if it can be saved with ``job``; a :class:`JobBoardError` saying why not otherwise."""
    if not isinstance(reason, str) or not reason.strip():
        raise JobBoardError(f"cancel of job {job}: the reason must be a non-empty string, got {reason!r}")
    return check_name(reason, f"cancel reason of job {job}", max_length=MAX_REASON)


def refuse(job: Job, state: JobState) -> JobBoardError:
    """The error for a cancel of a job that is over."""
    return JobBoardError(f"job {job} is {state.value}: it is over, there is nothing to cancel")


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
