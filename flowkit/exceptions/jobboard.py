"""Errors of job boards and the jobs on them (:class:`JobBoardError`), and of the conductors that
claim them (:class:`ConductorError`, apart: the board may be fine when a conductor cannot run).
"""

from __future__ import annotations

from flowkit.exceptions.base import FlowkitError


class JobBoardError(FlowkitError):
    """Errors of job boards and the jobs on them."""


class UnclaimableJobError(JobBoardError):
    """A job cannot be claimed (another owner has it, or it is gone)."""


class CancelRefused(JobBoardError):
    """A cancel asked for a job that is over (consumed, trashed, set aside, cancelled): nothing is left
    to cancel; the message says which state the job is in (``flowkit serve`` answers 409)."""


class NotOwnerError(JobBoardError):
    """Only the owner of a claim may consume, abandon or trash the job."""


class JobBoardConnectionError(JobBoardError):
    """The job board's service is unreachable, or the session to it was lost."""


class JobSetAsideError(UnclaimableJobError):
    """A claim found the job claimed too often without being consumed, and set it aside instead.

    The job stays off the board (with ``reason``) until an operator posts it again: a poison job
    must not cycle between conductors forever.
    """

    def __init__(self, job: str, reason: str) -> None:
        super().__init__(job, reason)
        self.job = job
        self.reason = reason

    def __str__(self) -> str:
        return f"job {self.job} was set aside: {self.reason}"


class MalformedJobError(JobBoardError, ValueError):
    """A stored job record is not a valid job; the board skips it with a warning naming where it is.

    Also a ``ValueError``: a record that does not parse is a bad value.
    """


class JobTooLargeError(JobBoardError, ValueError):
    """A job's record is larger than its board can store (ZooKeeper: about 1 MB per node).

    ``limit_of`` says whose limit it is (the board, and where its limit comes from).
    """

    def __init__(self, job: str, size: int, limit: int, limit_of: str) -> None:
        super().__init__(job, size, limit, limit_of)
        self.job = job
        self.size = size
        self.limit = limit
        self.limit_of = limit_of

    def __str__(self) -> str:
        return (
            f"job {self.job!r} is {self.size:,} bytes as stored, over the limit of {self.limit:,} bytes "
            f"of {self.limit_of}: keep large inputs out of the job's details and store (pass a "
            f"reference to them instead)"
        )


class ConductorError(FlowkitError):
    """A conductor cannot run as asked (an option out of range, a service that does not answer at start);
    the message names the conductor or the service. Not a :class:`JobBoardError`: the board may be fine."""
