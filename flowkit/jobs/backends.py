"""TaskFlow's module path for the job board backends; everything here is :mod:`flowkit.jobboard.backends`.

``fetch(name, conf, persistence=..., client=...)`` takes a URL or TaskFlow's settings dict
(:mod:`flowkit.jobboard.backends.settings`); :func:`backend` is TaskFlow's connected-board context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from flowkit.jobboard import JobBoard
from flowkit.jobboard.backends import SCHEMES, display_url, fetch

__all__ = ["SCHEMES", "backend", "display_url", "fetch"]


@contextlib.contextmanager
def backend(name: str, conf: str | Mapping[str, Any], **kwargs: Any) -> Iterator[JobBoard]:
    """A board from :func:`fetch`, connected for the ``with`` block and closed after it."""
    board = fetch(name, conf, **kwargs)
    board.connect()
    try:
        yield board
    finally:
        board.close()
