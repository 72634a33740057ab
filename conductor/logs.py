"""The daemon's log: one line per record, and a problem that persists said once, not at every retry.

A daemon's log is read line by line (journald, grep), and a database driver's errors span several
lines; a database that stays away makes its client warn at every retry, which buries everything else.
"""

from __future__ import annotations

import logging
import re
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str) -> None:
    """Log to stderr at ``level``, one line per record, repeated warnings thinned out."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLine(FORMAT))
    handler.addFilter(Repeats())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks at start-up are not news


class Repeats(logging.Filter):
    """Drops a warning that repeats within ``window`` seconds (durations in it aside: "retrying in
    0.42 s"), like syslog's "last message repeated"; the next one let through says how many went.

    A database that stays away makes its client warn at every retry; one line per problem is enough.
    """

    def __init__(self, window: float = 30.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = (record.name, re.sub(r"\d+\.\d+", "#", record.getMessage()))
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 1000:  # forget what has not repeated lately
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
            shown, dropped = self._seen.get(key, (-self.window, 0))
            if now - shown < self.window:
                self._seen[key] = (shown, dropped + 1)
                return False
            self._seen[key] = (now, 0)
        if dropped:
            record.msg, record.args = f"{record.getMessage()} ({dropped} more like it before)", ()
        return True


class OneLine(logging.Formatter):
    """One line per message (drivers' errors span several): a daemon's log is read line by line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = " ".join(record.message.split()) if "\n" in record.message else record.message
        return super().formatMessage(record)
