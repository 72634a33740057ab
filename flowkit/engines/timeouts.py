"""Bounding one sync atom call by its ``timeout``: on a helper thread, waited for until the deadline.

A thread cannot be killed. So a timed call runs on a daemon helper thread, and whoever waits for it (the
serial engine's thread, or one of the parallel engine's pool threads) stops waiting at the deadline: the
call fails with :class:`~flowkit.exceptions.AtomTimeout`, and the helper goes on until the call returns,
when its late result is discarded and logged. The waiting thread is free again at once, and nothing waits
for the abandoned call when the engine or the interpreter stops (helpers are daemons).

Helpers are kept between calls (at most :data:`IDLE_HELPERS` idle ones, shared by every engine of the
process): a timed call costs a hand-over to a waiting thread, not a thread start. A helper whose call was
abandoned comes back to the idle ones when the call returns at last. Atoms without a timeout never get
here.

On the process engine a timed call runs in a process that can be stopped: see
:mod:`~flowkit.engines.timed_processes`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from flowkit.atom import Atom
from flowkit.context import AtomContext
from flowkit.exceptions import AtomTimeout
from flowkit.failure import Failure

LOG = logging.getLogger(__name__)

IDLE_HELPERS = 32
"""Idle helper threads kept for the next timed calls; a helper beyond that many ends when its call does."""

Call = Callable[[Atom, str, dict[str, Any], "AtomContext | None"], Any]


class _Job:
    """One timed call handed to a helper, and what came of it."""

    __slots__ = ("abandoned", "args", "call", "done", "lock", "out")

    def __init__(self, call: Call, args: tuple[Atom, str, dict[str, Any], AtomContext | None]) -> None:
        self.call = call
        self.args = args
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.out: tuple[bool, Any] | None = None
        self.abandoned = False


_idle: list[queue.SimpleQueue[_Job]] = []
_idle_lock = threading.Lock()


def call_bounded(
    call: Call, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None, timeout: float
) -> tuple[bool, Any]:
    """``call(atom, action, kwargs, ctx)`` (which returns ``(ok, value)``) on a helper thread, waited for
    at most ``timeout`` seconds; past it an AtomTimeout failure, and the late result is logged and dropped."""
    job = _Job(call, (atom, action, kwargs, ctx))
    _hand_over(job)
    if not job.done.wait(timeout):
        with job.lock:
            job.abandoned = job.out is None
        if job.abandoned:
            LOG.warning(
                "%s of atom %r did not finish within its timeout of %gs: it fails; its thread cannot be "
                "killed and keeps running until it returns",
                action,
                atom.name,
                timeout,
            )
            return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, "a thread"))
    assert job.out is not None
    return job.out


def _hand_over(job: _Job) -> None:
    """Give ``job`` to an idle helper, or to a new one."""
    with _idle_lock:
        inbox = _idle.pop() if _idle else None
    if inbox is None:
        inbox = queue.SimpleQueue()
        threading.Thread(target=_help, args=(inbox,), name="flowkit-timed", daemon=True).start()
    inbox.put(job)


def _help(inbox: queue.SimpleQueue[_Job]) -> None:
    """A helper thread: run the jobs it is handed, one at a time, until there are enough idle helpers."""
    while True:
        job = inbox.get()
        try:
            out = job.call(*job.args)
        except BaseException:  # the call never raises but for SystemExit and the like: report them
            out = (False, Failure.from_base_exception())
        with job.lock:
            job.out = out
            late = job.abandoned
        job.done.set()
        if late:
            atom, action = job.args[0], job.args[1]
            LOG.warning(
                "%s of atom %r returned after its timeout; its result was discarded", action, atom.name
            )
        del job, out
        with _idle_lock:
            if len(_idle) >= IDLE_HELPERS:
                return
            _idle.append(inbox)
