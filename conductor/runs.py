"""What a conductor keeps about the jobs it runs: each claim's state as the board reports it, and counts.

Apart from the loop because both the claim loop (which registers a run and hears claim events from the
board's thread) and each job's thread (which pauses or drops its flow on what was heard) read them:
this is the state they share, and nothing here talks to a board or to persistence.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flowkit.engines import Engine
from flowkit.jobboard import ClaimEvent, Job


@dataclass
class Run:
    """One claimed job and what the board has said about its claim."""

    job: Job
    engine: Engine | None = None
    in_doubt: bool = False
    lost: bool = False
    changed: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    """Why the job was asked to cancel (``board.cancel``), once the board said so."""

    def must_pause(self) -> bool:
        return self.in_doubt or self.lost

    def hear(self, event: ClaimEvent) -> None:
        """Take in what the board said about this claim."""
        if event is ClaimEvent.IN_DOUBT:
            self.in_doubt = True
        elif event is ClaimEvent.CONFIRMED:
            self.in_doubt = False
        else:
            self.lost = True


@dataclass
class Stats:
    """What a conductor did, for logs and tests; job threads count through :meth:`add`."""

    claimed: int = 0
    consumed: int = 0
    abandoned: int = 0
    set_aside: int = 0
    lost: int = 0
    cancelled: int = 0
    parked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``counter`` (``+=`` on an attribute is not atomic across threads)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)
