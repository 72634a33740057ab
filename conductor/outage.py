"""A service the conductor needs (the board, persistence) that went away: say so once, wait, try again.

While the database is down a conductor has nothing useful to do, but it must not stop serving nor
fill its log: it writes one line when the service goes away and one when it is back, and in between
tries again after waits that grow to a cap. The waits are the caller's to take (on its stop event, so
that SIGTERM is not kept waiting). :func:`probe` tells whether persistence answers now.
"""

from __future__ import annotations

import logging
import threading
import time


class Outage:
    """The state of one service: up, or down since when and how long to wait before the next try."""

    def __init__(self, log: logging.Logger, what: str, first: float = 0.5, cap: float = 10.0) -> None:
        self._log = log
        self.what = what
        self.first = first
        self.cap = cap
        self._lock = threading.Lock()
        self._since: float | None = None
        self._wait = first
        self._next_try = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, reason: str, consequence: str = "") -> float:
        """The service failed: log it (and ``consequence``) if it was up; return seconds to wait before
        trying it again."""
        with self._lock:
            now = time.monotonic()
            if self._since is None:
                self._since, self._wait = now, self.first
                self._log.warning(
                    "%s unreachable: %s; %s(trying again every %g s at most)",
                    self.what,
                    reason,
                    f"{consequence} " if consequence else "",
                    self.cap,
                )
            else:
                self._wait = min(self._wait * 2, self.cap)
            self._next_try = now + self._wait
            return self._wait

    def due(self) -> float:
        """Seconds until the next try is due (0: try now)."""
        with self._lock:
            return max(0.0, self._next_try - time.monotonic()) if self._since is not None else 0.0

    def ok(self) -> None:
        """The service answered: log it if it was down."""
        with self._lock:
            since, self._since = self._since, None
            if since is not None:
                self._log.info("%s reachable again after %.1f s", self.what, time.monotonic() - since)


def reason(exc: BaseException) -> str:
    """The innermost cause of ``exc`` in one line (the driver's own words: "Connection refused")."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    return " ".join(str(root).split()) or type(root).__name__


def probe(url: str) -> str | None:
    """None if persistence at ``url`` answers a query now (one attempt, no retrying), else why not."""
    from flowkit.exceptions import FlowkitError
    from flowkit.persistence.backends import fetch
    from flowkit.persistence.backoff import NO_RETRY

    if url.startswith("memory:"):
        return None
    backend = fetch(url, backoff=NO_RETRY)
    try:
        with backend.get_connection() as conn:
            conn.validate()
    except FlowkitError as exc:
        return reason(exc)
    finally:
        backend.close()
    return None
