"""``flowkit.logging``: TaskFlow's log levels and ``getLogger`` (with ``trace``), for TaskFlow programs.

TaskFlow adds a level below DEBUG, ``BLATHER`` (also called ``TRACE``, 5), for its most detailed
messages, and programs pass it to ``logging.basicConfig(level=...)``. flowkit logs with the standard
levels; this module only keeps those names working.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

BLATHER = 5
"""Below DEBUG: TaskFlow's most detailed level."""
TRACE = BLATHER

CRITICAL = logging.CRITICAL
DEBUG = logging.DEBUG
ERROR = logging.ERROR
FATAL = logging.FATAL
INFO = logging.INFO
NOTSET = logging.NOTSET
WARN = logging.WARNING
WARNING = logging.WARNING

logging.addLevelName(BLATHER, "TRACE")

__all__ = [
    "BLATHER",
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "FATAL",
    "INFO",
    "NOTSET",
    "TRACE",
    "WARN",
    "WARNING",
    "TraceLogger",
    "getLogger",
]


class TraceLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger with ``trace()`` (and its TaskFlow alias ``blather()``) at :data:`TRACE`."""

    def trace(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, msg, *args, **kwargs)

    blather = trace

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        if self.extra:
            kwargs.setdefault("extra", {}).update(self.extra)
        return msg, kwargs


def getLogger(name: str = "flowkit", extra: dict[str, Any] | None = None) -> TraceLogger:
    """The logger ``name`` (as :func:`logging.getLogger`), able to ``trace()``; ``extra`` goes with
    every record it logs."""
    return TraceLogger(logging.getLogger(name), extra or {})
