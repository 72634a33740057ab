"""How long to keep retrying a database that went away, and how long to wait between tries.

A PostgreSQL restart or a dropped connection should not fail a flow that has been running for an
hour, so storage calls are retried; a database that stays away must not hang the engine forever, so
the retrying is bounded in time. When the bound passes the engine stops with a
:class:`~flowkit.exceptions.StorageError`; everything saved before stays saved and the flow resumes
later. The delays grow exponentially (with a little jitter, so that many engines do not reconnect
in lockstep) up to a cap.

A process that is asked to stop (a daemon on SIGTERM) must not sit out the whole bound first: give
the backoff a ``wake`` event and set it. A sleeping retry then wakes at once and the retrying ends,
as if the bound had passed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Retry for up to ``timeout`` seconds, sleeping ``first``, ``first * factor``, ... (at most ``cap``).

    ``wake``: once set, :meth:`sleep` returns at once and :meth:`delays` ends (retrying gives up).
    """

    timeout: float = 30.0
    first: float = 0.05
    factor: float = 2.0
    cap: float = 2.0
    jitter: float = 0.1
    wake: threading.Event | None = None

    def delays(self) -> Iterator[float]:
        """Sleep times between attempts; ends when the next sleep would pass ``timeout``, or on ``wake``."""
        deadline = time.monotonic() + self.timeout
        delay = self.first
        while True:
            wait = delay * (1.0 + self.jitter * random.random())
            left = deadline - time.monotonic()
            if left <= 0 or self.woken:
                return
            yield min(wait, left)
            delay = min(delay * self.factor, self.cap)

    def sleep(self, seconds: float) -> None:
        """Sleep between two attempts; returns early once ``wake`` is set."""
        if self.wake is None:
            time.sleep(seconds)
        else:
            self.wake.wait(seconds)

    @property
    def woken(self) -> bool:
        return self.wake is not None and self.wake.is_set()


NO_RETRY = Backoff(timeout=0.0)
"""Fail on the first error (for tools that should report at once)."""
