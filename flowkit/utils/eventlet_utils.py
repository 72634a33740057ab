"""``flowkit.utils.eventlet_utils``: whether eventlet is installed, as TaskFlow programs ask.

flowkit runs nothing on eventlet; a program that imports this only to check keeps working.
"""

from __future__ import annotations

import importlib.util

from flowkit.exceptions import FlowkitError

__all__ = ["EVENTLET_AVAILABLE", "check_for_eventlet"]

EVENTLET_AVAILABLE = importlib.util.find_spec("eventlet") is not None
"""Whether eventlet can be imported (it is not imported here)."""


def check_for_eventlet(exc: Exception | None = None) -> None:
    """Raise ``exc`` (default: a :class:`FlowkitError` saying so) unless eventlet is installed."""
    if not EVENTLET_AVAILABLE:
        raise exc if exc is not None else FlowkitError("eventlet is not installed (pip install eventlet)")
