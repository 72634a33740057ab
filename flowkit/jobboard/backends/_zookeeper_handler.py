"""kazoo's threading handler with a cheaper ``select``: every board's connection thread calls it several
times per message (each header and body read waits on it), and kazoo's own builds an epoll selector
per call (epoll_create, epoll_ctl, close: three system calls and an object each time).

Why it matters: every board on a tree hears every job's claim and consume (its watch events), so with
K conductors each message costs K times over; in a board that only watched, a third of its CPU went to
these selectors (issue 13). ``poll`` needs no set-up call and has no fd limit, unlike ``select``.
Called straight, not through :mod:`selectors` (which builds a selector, a key per fd and a map per
call): about a third of the time per call. The answer is kazoo's: a file object is readable on
``POLLIN`` or any error or hang-up, writable on ``POLLOUT`` or the same, and only for what it was
asked for; one both readable and writable is reported readable alone (kazoo's ``selector_select``).
"""

from __future__ import annotations

import math
import select
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.handlers.utils import fileobj_to_fd, selector_select

_READ, _WRITE = getattr(select, "POLLIN", 1), getattr(select, "POLLOUT", 4)


class PollHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo's threading handler, waiting on its sockets with ``poll``."""

    def select(
        self, rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        if not hasattr(select, "poll"):  # Windows
            return selector_select(rlist, wlist, xlist, timeout)  # type: ignore[no-any-return]
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be non-negative")
        asked: dict[int, int] = {}
        objects: dict[int, list[Any]] = {}
        for mask, fileobjs in ((_READ, rlist), (_WRITE, wlist)):
            for fileobj in fileobjs:
                fd = fileobj_to_fd(fileobj)
                asked[fd] = asked.get(fd, 0) | mask
                objects.setdefault(fd, []).append(fileobj)
        poller = select.poll()
        for fd, mask in asked.items():
            poller.register(fd, mask)
        readable: list[Any] = []
        writable: list[Any] = []
        for fd, happened in poller.poll(None if timeout is None else math.ceil(timeout * 1e3)):
            if happened & ~_WRITE and asked[fd] & _READ:
                readable.extend(objects[fd])
            elif happened & ~_READ and asked[fd] & _WRITE:
                writable.extend(objects[fd])
        return readable, writable, []
