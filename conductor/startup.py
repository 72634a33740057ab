"""Start-up checks: the board and persistence answer within a few seconds, or the daemon says which not.

A daemon started against a database that is down should say so at once, in one line naming what is
unreachable, and exit non-zero (its supervisor shows that line), rather than retry for half a minute
and die with a chain of tracebacks. Each check repeats quick single attempts until its deadline, in a
thread of its own: a server that accepts connections and then never answers cannot hold the daemon
past the deadline, nor past a stop request (SIGTERM during start-up). Both checks run at once, so the
whole start-up takes at most ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from conductor.outage import reason
from flowkit.exceptions import ConductorError
from flowkit.jobboard import JobBoard
from flowkit.jobboard.backends import display_url

PAUSE = 0.25
"""Seconds between two attempts of a check (a database that is starting up answers soon)."""
QUIET = ("kazoo",)
"""Loggers of clients that warn at each failed connection attempt, which would bury the one line
that says what failed (persistence is tried without retries, so its client says nothing)."""


class _Check(threading.Thread):
    """Calls ``attempt`` until it succeeds or ``deadline`` passes; keeps the last error."""

    def __init__(
        self, what: str, attempt: Callable[[], None], deadline: float, stop: threading.Event
    ) -> None:
        super().__init__(name=f"conductor-check-{what.split()[0]}", daemon=True)
        self.what = what
        self._attempt = attempt
        self._deadline = deadline
        self._stop_asked = stop
        self.error: BaseException | None = None
        self.done = False

    def run(self) -> None:
        while True:
            try:
                self._attempt()
            except Exception as exc:
                self.error = exc
            else:
                self.error = None
                self.done = True
                return
            if time.monotonic() + PAUSE >= self._deadline or self._stop_asked.wait(PAUSE):
                self.done = True
                return


def check(
    board: JobBoard, board_url: str, persistence_url: str | None, timeout: float, stop: threading.Event
) -> bool:
    """Connect ``board`` and bring persistence's schema up to date, both within ``timeout`` seconds.

    ``persistence_url`` None: the board alone (an admin command that needs no persistence).
    Returns False when ``stop`` was set meanwhile (the checks are left behind: the caller exits).
    Raises :class:`~flowkit.exceptions.ConductorError` naming the board or persistence (by its URL,
    without the password) and why, when one of them failed or did not answer in time.
    """
    deadline = time.monotonic() + timeout
    checks = [_Check(f"board {display_url(board_url)}", board.connect, deadline, stop)]
    if persistence_url is not None:
        url = persistence_url
        checks.append(_Check(f"persistence {display_url(url)}", lambda: _upgrade(url), deadline, stop))
    with _quiet():
        for c in checks:
            c.start()
        while not all(c.done for c in checks):
            if stop.is_set():
                return False
            if time.monotonic() > deadline + PAUSE:
                break
            time.sleep(0.05)
    if stop.is_set():
        return False
    for c in checks:
        if not c.done:
            raise ConductorError(f"{c.what} did not answer within {timeout:g} s")
        if c.error is not None:
            raise ConductorError(f"{c.what} is unreachable (tried for {timeout:g} s): {reason(c.error)}")
    return not stop.is_set()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _upgrade(url: str) -> None:
    """One attempt, no retrying inside: the check paces its attempts itself, silently."""
    from flowkit.persistence.backends import fetch
    from flowkit.persistence.backoff import NO_RETRY

    backend = fetch(url, backoff=NO_RETRY)
    try:
        with backend.get_connection() as conn:
            conn.upgrade()
    finally:
        backend.close()
