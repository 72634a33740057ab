"""Bounding one sync atom call by its ``timeout``: on a thread of its own, or in a process of its own.

A thread cannot be killed. So a timed call runs on a daemon thread of its own, and whoever waits for it
(the serial engine's thread, or one of the parallel engine's pool threads) stops waiting at the deadline:
the call fails with :class:`~flowkit.exceptions.AtomTimeout`, and its thread goes on until the call
returns, when its late result is discarded and logged. The waiting thread is free again, and nothing waits
for the abandoned one when the engine or the interpreter stops (it is a daemon). Only timed calls pay for
the extra thread (about 0.1 ms); the others run as before.

On the process engine a timed call runs in a process that can be stopped: see
:mod:`~flowkit.engines.timed_processes`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flowkit.atom import Atom
from flowkit.context import AtomContext
from flowkit.exceptions import AtomTimeout
from flowkit.failure import Failure

LOG = logging.getLogger(__name__)

Call = Callable[[Atom, str, dict[str, Any], "AtomContext | None"], Any]


def call_bounded(
    call: Call, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None, timeout: float
) -> tuple[bool, Any]:
    """``call(atom, action, kwargs, ctx)`` (which returns ``(ok, value)``) on a daemon thread, waited for
    at most ``timeout`` seconds; past it an AtomTimeout failure, and the late result is logged and dropped."""
    done = threading.Event()
    lock = threading.Lock()
    box: list[tuple[bool, Any]] = []
    abandoned = False

    def target() -> None:
        try:
            out = call(atom, action, kwargs, ctx)
        except BaseException:  # call never raises but for SystemExit and the like: report them
            out = (False, Failure())
        with lock:
            box.append(out)
            late = abandoned
        done.set()
        if late:
            LOG.warning(
                "%s of atom %r returned after its timeout of %gs; its result was discarded",
                action,
                atom.name,
                timeout,
            )

    thread = threading.Thread(target=target, name=f"flowkit-timed-{atom.name}", daemon=True)
    thread.start()
    if not done.wait(timeout):
        with lock:
            if not box:
                abandoned = True
        if abandoned:
            LOG.warning(
                "%s of atom %r did not finish within its timeout of %gs: it fails; its thread cannot be "
                "killed and keeps running until it returns",
                action,
                atom.name,
                timeout,
            )
            return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, "a thread"))
    return box[0]
