"""Waiting for something another thread or process does, with a deadline that names what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL = 0.02


def wait_until(check: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``check()`` until it is true; return the monotonic time it became so.

    Raises AssertionError naming ``what`` after ``timeout`` seconds, so a hung test fails with the
    event it was waiting for rather than a bare timeout.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic()
