"""What an operator sees of a board: every job with its state and owner, and jobs found by uuid prefix.

Apart from the board contract because these are read-only views written once over its primitives
(``iterjobs``, ``find_owner``, ``set_aside_jobs``, ``finished_jobs``); a backend may answer
:meth:`~flowkit.jobboard.JobBoard.listing` in one query instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowkit.exceptions import AmbiguousPrefixError, NotFound
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.jobboard.job import Job


FINISHED = frozenset({JobState.COMPLETE, JobState.TRASHED})


@dataclass(frozen=True)
class JobEntry:
    """One job as an operator lists it: its state and owner read together, and when it last changed."""

    job: Job
    state: JobState
    owner: str | None = None
    """Who holds the claim (CLAIMED), or who consumed or moved the job last (when the board knows)."""
    updated_on: float | None = None
    """Seconds since the epoch of the last change, when the board records it."""


def generic_listing(board: JobBoard, finished: bool) -> list[JobEntry]:
    """Every job of ``board`` with its state, from the board's primitives (one read per claimed job)."""
    entries = []
    for job in board.iterjobs(ensure_fresh=True):
        owner = board.find_owner(job)
        state = JobState.CLAIMED if owner else board.state_of(job)  # UNCLAIMED, or WAITING (parked)
        entries.append(JobEntry(job, state, owner))
    entries += [JobEntry(job, JobState.SET_ASIDE) for job in board.set_aside_jobs()]
    entries += [JobEntry(job, JobState.CANCELLED) for job in board.cancelled_jobs()]
    if finished:
        entries += board.finished_jobs()
    return entries


def generic_page(
    board: JobBoard,
    states: Collection[JobState] | None,
    owner: str | None,
    finished: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[JobEntry]]:
    """:meth:`JobBoard.page` over :meth:`JobBoard.listing`, filtered and sorted here."""
    entries = board.listing(finished=finished or bool(states and set(states) & FINISHED))
    if states:
        entries = [e for e in entries if e.state in states]
    if owner is not None:
        entries = [e for e in entries if e.owner == owner]
    entries.sort(key=lambda e: -(e.updated_on or e.job.created_on))
    return len(entries), entries[offset : offset + limit]


def find_by_prefix(board: JobBoard, prefix: str) -> Job:
    """The one job whose uuid starts with ``prefix`` (any state); NotFound or AmbiguousPrefixError."""
    prefix = prefix.strip().lower()
    matches: dict[str, Job] = {}
    for entry in board.listing():
        if entry.job.uuid == prefix:
            return entry.job
        if entry.job.uuid.startswith(prefix):
            matches[entry.job.uuid] = entry.job
    if not matches:
        raise NotFound(f"no job {prefix!r} (uuid or uuid prefix) on board {board.name!r}")
    if len(matches) > 1:
        raise AmbiguousPrefixError("job", prefix, sorted(matches))
    return next(iter(matches.values()))
