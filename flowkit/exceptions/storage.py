"""Errors of persistence (:class:`StorageError`): a database that went away or refused a write, a
record that cannot be read back, a schema too old, a write fenced off by a newer claim.
"""

from __future__ import annotations

from flowkit.exceptions.base import FlowkitError


class StorageError(FlowkitError):
    """Persistence failed: the database is unreachable, a write was refused, or data is corrupt."""


class CorruptRecordError(StorageError):
    """A saved record cannot be read back (a value that is not JSON, an unknown state or kind).

    Not a passing fault like a database that went away: reading it again fails again, so a
    conductor sets its job aside at once and listings skip it.
    """


class SchemaError(StorageError):
    """The database schema is missing or older than this flowkit; run ``flowkit db upgrade URL``."""


class ClaimLost(StorageError):
    """A write of a flow was refused by the database: a newer claim on its job has taken the flow over.

    Every write of an engine loaded with a fencing token (``engines.load(..., fence=token)``, the
    token of a job board claim) is checked against the token saved in the flow's rows; a later
    claimant saves a higher one before its first write. The engine stops at once on this error
    (nothing is retried, nothing new starts) and a conductor drops the job: it is someone else's.
    ``newer`` is the token that won, when it could be read (None when the flow detail is gone).
    """

    def __init__(self, flow_name: str, flow_uuid: str, token: int, newer: int | None) -> None:
        super().__init__(flow_name, flow_uuid, token, newer)
        self.flow_name, self.flow_uuid, self.token, self.newer = flow_name, flow_uuid, token, newer

    def __str__(self) -> str:
        by = f"a newer claim (fence {self.newer})" if self.newer is not None else "a newer claim"
        return (
            f"flow detail {self.flow_name!r} ({self.flow_uuid}) was taken over by {by}: "
            f"writes with fence {self.token} are refused"
        )
