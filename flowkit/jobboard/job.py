"""A job: a named piece of work on a board, pointing at the logbook and flow detail that hold its flow.

The job itself stays small (name, details, priority, references): the flow, its factory and its
progress live in persistence, so any conductor can rebuild and resume it. A job is stored on every
board as the same JSON record, checked field by field when read, because boards are shared and a
node written by another program, another version or a person must not break a listing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardError, JobTooLargeError, MalformedJobError
from flowkit.names import MAX_JOB_NAME, check_name
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.persistence.models import LogBook

RECORD_VERSION = 1


class JobPriority(IntEnum):
    """How soon a job should run; higher first, then oldest first (TaskFlow's five levels)."""

    VERY_LOW = -2
    LOW = -1
    NORMAL = 0
    HIGH = 1
    VERY_HIGH = 2


@dataclass(eq=False)
class Job:
    """One job on a board. ``state`` and ``owner`` are read from the board when asked, never cached."""

    board: JobBoard = field(repr=False)
    uuid: str
    name: str
    details: dict[str, Any] = field(default_factory=dict)
    priority: int = JobPriority.NORMAL
    created_on: float = field(default_factory=time.time)
    """Seconds since the epoch when the job was posted."""
    book_uuid: str | None = None
    book_name: str | None = None
    flow_uuid: str | None = None
    """The flow detail to run; when None, the logbook's only flow detail (as in TaskFlow)."""
    sequence: int = 0
    """Position on the board (ZooKeeper sequence number, or row id): older jobs first."""
    attempts: int = 0
    """Claims that did not end in ``consume``: crashed conductors and counted abandons."""
    last_reason: str | None = None
    """Why the job was last abandoned or set aside."""
    cancel_reason: str | None = None
    """Why a cancel was asked for (``board.cancel``), or None: the conductor that holds the job, or
    claims it next, reverts its flow and ends it CANCELLED."""
    factory: dict[str, Any] | None = None
    """The factory record of the flow detail ``flow_uuid`` names, as ``post_flow`` saved it there
    (``FactoryDetails.as_meta()``), or None: a conductor builds the flow from it without reading the
    flow detail first (it reads it once, in the engine's restore, which refuses one that is not saved)."""
    fence: int | None = None
    """The fencing token of this board's claim on the job, set by a claim (None: not claimed here).

    Grows with every claim of the job (ZooKeeper: the claim's zxid; SQL: the job row's claim epoch),
    so the engine of a later claim always out-ranks an earlier one (``engines.load(..., fence=)``)."""

    @property
    def state(self) -> JobState:
        return self.board.state_of(self)

    @property
    def owner(self) -> str | None:
        return self.board.find_owner(self)

    @property
    def book(self) -> LogBook | None:
        """The job's logbook from the board's persistence backend, or None when it has none."""
        return self.board.load_book(self)

    def sort_key(self) -> tuple[int, int]:
        return (-int(self.priority), self.sequence)

    def to_record(self) -> dict[str, Any]:
        """The JSON record stored on the board."""
        book = {"uuid": self.book_uuid, "name": self.book_name} if self.book_uuid else None
        record = {
            "version": RECORD_VERSION,
            "uuid": self.uuid,
            "name": self.name,
            "details": self.details,
            "priority": int(self.priority),
            "created_on": self.created_on,
            "book": book,
            "flow_uuid": self.flow_uuid,
            "attempts": self.attempts,
            "last_reason": self.last_reason,
        }
        if self.cancel_reason is not None:
            record["cancel_reason"] = self.cancel_reason
        if self.factory is not None:
            record["factory"] = self.factory
        return record

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_record(), separators=(",", ":")).encode()

    def check(self, max_bytes: int | None = None, limit_of: str = "the board") -> None:
        """Refuse, before anything is saved, a job its board could not store as it is.

        The same rules on every board: a name of 1 to :data:`~flowkit.names.MAX_JOB_NAME` characters
        that every store takes (no NUL, no lone surrogate), details that are JSON; and a record of at
        most ``max_bytes`` (the board's limit, if it has one, described by ``limit_of``).
        """
        check_name(self.name, "job name", max_length=MAX_JOB_NAME, empty=False)
        try:
            size = len(self.to_bytes())
        except (TypeError, ValueError, RecursionError) as exc:
            raise JobBoardError(f"job {self.name!r}: its details must be JSON: {exc}") from None
        if max_bytes is not None and size > max_bytes:
            raise JobTooLargeError(self.name, size, max_bytes, limit_of)

    @classmethod
    def from_record(cls, board: JobBoard, record: object, sequence: int = 0) -> Job:
        """Rebuild a job from its stored record; :class:`MalformedJobError` says what is wrong."""
        if not isinstance(record, dict):
            raise MalformedJobError(f"a job record is a JSON object, not {type(record).__name__}")
        for key, kind in (("uuid", str), ("name", str)):
            if not isinstance(record.get(key), kind) or not record[key]:
                raise MalformedJobError(f"field {key!r} must be a non-empty string")
        details = record.get("details") or {}
        if not isinstance(details, dict):
            raise MalformedJobError("field 'details' must be an object")
        book = record.get("book") or {}
        if not isinstance(book, dict):
            raise MalformedJobError("field 'book' must be an object or null")
        try:
            priority = int(record.get("priority", 0))
            created_on = float(record.get("created_on", 0.0))
            attempts = int(record.get("attempts", 0))
        except (TypeError, ValueError) as exc:
            raise MalformedJobError(f"bad number in job record: {exc}") from None
        flow_uuid = record.get("flow_uuid") or details.get("flow_uuid")
        factory = record.get("factory")
        if factory is not None and not isinstance(factory, dict):
            raise MalformedJobError("field 'factory' must be an object or null")
        return cls(
            board=board,
            uuid=record["uuid"],
            name=record["name"],
            details=details,
            priority=priority,
            created_on=created_on,
            book_uuid=_opt_str(book.get("uuid"), "book.uuid"),
            book_name=_opt_str(book.get("name"), "book.name"),
            flow_uuid=_opt_str(flow_uuid, "flow_uuid"),
            sequence=sequence,
            attempts=attempts,
            last_reason=_opt_str(record.get("last_reason"), "last_reason"),
            cancel_reason=_opt_str(record.get("cancel_reason"), "cancel_reason"),
            factory=factory,
        )

    @classmethod
    def from_bytes(cls, board: JobBoard, data: bytes, sequence: int = 0) -> Job:
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedJobError(f"not JSON: {exc}") from None
        return cls.from_record(board, record, sequence)

    def __str__(self) -> str:
        return f"{self.name!r} ({self.uuid})"


def _opt_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedJobError(f"field {what!r} must be a string or null")
