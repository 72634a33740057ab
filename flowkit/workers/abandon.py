"""A worker's calls with a ``timeout``: when each is due, and the ones abandoned past it.

A thread cannot be killed, so an abandoned call keeps running, and keeps its thread, until it returns.
The worker's pool has ``spare`` extra threads for such calls: the first ``spare`` abandoned calls cost no
capacity (their requests are acknowledged, and new ones take their place). Past that, an abandoned call
keeps its request unacknowledged (with the batch it came in), so the broker sends the worker one
message fewer, and it counts as *stuck*: the worker advertises it, and engines count it out, until the
call returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Delivery:
    """A request message (one request or a ``requests`` batch), the link generation it came on (what
    acknowledging it takes), and how many of its requests still hold it: it is acknowledged when the
    last one lets go (answered, or abandoned on a spare thread)."""

    __slots__ = ("generation", "holds", "message")

    def __init__(self, message: Any, generation: int) -> None:
        self.message = message
        self.generation = generation
        self.holds = 0


@dataclass(frozen=True)
class Deadline:
    """When a call is abandoned, and what to say then."""

    at: float
    timeout: float
    reply_to: str
    atom: str
    action: str


class Timeouts:
    """Deadlines of the calls running with a timeout, and the abandoned calls still holding threads."""

    def __init__(self, spare: int) -> None:
        self.spare = spare
        self._deadlines: dict[str, Deadline] = {}
        self._abandoned: dict[str, Delivery | None] = {}  # uuid -> its held delivery; None: on a spare

    def watch(self, req_id: str, deadline: Deadline) -> None:
        self._deadlines[req_id] = deadline

    def answered(self, req_id: str) -> None:
        """The call answered in time."""
        self._deadlines.pop(req_id, None)

    def due(self, now: float) -> tuple[list[tuple[str, Deadline]], float | None]:
        """The calls past their deadline (no longer watched), and when the next one is due."""
        due: list[tuple[str, Deadline]] = []
        next_at: float | None = None
        for req_id, deadline in self._deadlines.items():
            if deadline.at <= now:
                due.append((req_id, deadline))
            elif next_at is None or deadline.at < next_at:
                next_at = deadline.at
        for req_id, _ in due:
            del self._deadlines[req_id]
        return due, next_at

    def abandon(self, req_id: str, delivery: Delivery) -> bool:
        """Give up on a call; True when it runs on a spare thread (acknowledge its request now), False
        when it holds its request (and a thread) until it returns."""
        on_spare = self.running - self.stuck < self.spare
        self._abandoned[req_id] = None if on_spare else delivery
        return on_spare

    def returned(self, req_id: str) -> Delivery | None:
        """An abandoned call returned: the delivery it held, to acknowledge now, if any."""
        return self._abandoned.pop(req_id)

    def __contains__(self, req_id: object) -> bool:
        """Whether ``req_id`` is an abandoned call still running."""
        return req_id in self._abandoned

    @property
    def watching(self) -> bool:
        return bool(self._deadlines)

    @property
    def running(self) -> int:
        """Abandoned calls whose threads have not returned yet."""
        return len(self._abandoned)

    @property
    def stuck(self) -> int:
        """Threads abandoned calls hold beyond the spare ones: capacity lost until they return."""
        return sum(1 for held in self._abandoned.values() if held is not None)
