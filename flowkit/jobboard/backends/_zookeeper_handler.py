"""kazoo's threading handler with a cheaper ``select``: every board's connection thread calls it several
times per message (each header and body read waits on it), and kazoo's own builds an epoll selector
per call (epoll_create, epoll_ctl, close: three system calls and an object each time).

Why it matters: every board on a tree hears every job's claim and consume through its watches, so with
K conductors each message costs K times over; in a board that only watched, a third of its CPU went to
these selectors (issue 13). ``poll`` needs no set-up call and has no fd limit, unlike ``select``.
The same kazoo function does the work, with :class:`selectors.PollSelector` as its selector.
"""

from __future__ import annotations

import selectors
import types
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.handlers.utils import selector_select

_POLL = types.SimpleNamespace(
    EVENT_READ=selectors.EVENT_READ,
    EVENT_WRITE=selectors.EVENT_WRITE,
    DefaultSelector=getattr(selectors, "PollSelector", selectors.DefaultSelector),  # no poll: Windows
)


class PollHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo's threading handler, waiting on its sockets with ``poll``."""

    def select(self, *args: Any, **kwargs: Any) -> Any:
        return selector_select(*args, selectors_module=_POLL, **kwargs)
