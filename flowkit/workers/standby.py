"""The thread that takes over a worker's loop while the loop's own thread runs a call.

Why a worker's loop thread runs a call itself: when nothing else runs, handing a call to a pool thread
is the most expensive step of its round trip (a wake-up of another thread, and the two threads trading
the interpreter lock back and forth while the loop finishes its round), more than running a short task.
But the loop must go on while a call runs: heartbeats, other requests, ``running``
announcements and discovery answers. So a call the loop thread runs is watched from here: a thread
that waits on the broker's socket (and the loop's wake-ups) for up to :data:`TAKEOVER_S` at a time and,
once something comes for the loop or the call has run that long, runs the loop's rounds itself until
the call returns. It watches only while such calls come (it sleeps on an event after :data:`IDLE_S`
without one), and it never wakes the loop's thread: a quick call costs two attribute writes.

See :meth:`flowkit.workers.worker.Worker._run_inline` for which calls the loop thread runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["IDLE_S", "TAKEOVER_S", "Standby"]

TAKEOVER_S = 0.005
"""How long a call runs on the loop's thread before the loop's rounds go on here (at most twice this)."""
IDLE_S = 1.0
"""After this long without a call on the loop's thread, this thread stops looking (until the next one)."""


class Standby:
    """Watches ``since()`` (when the loop thread's current call began, or None) and calls
    ``take_over(since)`` once a call has run :data:`TAKEOVER_S`, or ``has_work(timeout)`` (which waits
    up to ``timeout`` for it) says something waits for the loop; ``take_over`` returns when that call
    has returned (or the loop is over)."""

    def __init__(
        self,
        since: Callable[[], float | None],
        take_over: Callable[[float], None],
        has_work: Callable[[float], bool],
        name: str,
    ) -> None:
        self._since = since
        self._take_over = take_over
        self._has_work = has_work
        self._name = name
        self._armed = threading.Event()
        self._closed = False
        self._last = 0.0
        self._thread: threading.Thread | None = None

    def arm(self) -> None:
        """A call begins on the loop's thread (``since()`` says when, set before this): look from now on."""
        self._last = time.monotonic()
        if self._armed.is_set():
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
            self._thread.start()
        self._armed.set()

    def close(self) -> None:
        """Stop looking, and let the thread end (any thread; it may be in a take-over)."""
        self._closed = True
        self._armed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _watch(self) -> None:
        while True:
            self._armed.wait()
            if self._closed:
                return
            # (Closed meanwhile: no call runs, and the next wait returns.)
            work = self._has_work(TAKEOVER_S) if self._since() is not None else _sleep(TAKEOVER_S)
            since = self._since()
            now = time.monotonic()
            if since is not None:
                if work or now - since >= TAKEOVER_S:
                    self._take_over(since)
            elif now - self._last > IDLE_S:
                self._armed.clear()
                # A call that began just before the clear armed it before the clear: look again.
                if self._since() is not None:
                    self._armed.set()


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
