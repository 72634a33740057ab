"""Bounding one sync atom call by its ``timeout``: on a thread of its own, or in a process of its own.

A thread cannot be killed. So a timed call runs on a daemon thread of its own, and whoever waits for it
(the serial engine's thread, or one of the parallel engine's pool threads) stops waiting at the deadline:
the call fails with :class:`~flowkit.exceptions.AtomTimeout`, and its thread goes on until the call
returns, when its late result is discarded and logged. The waiting thread is free again, and nothing waits
for the abandoned one when the engine or the interpreter stops (it is a daemon). Only timed calls pay for
the extra thread (about 0.1 ms); the others run as before.

A process can be killed, but futurist's (and the stdlib's) process pool cannot stop one call: killing one
of its processes breaks the pool and fails every call in it. So on the process engine a timed call runs in
a process of its own (same multiprocessing context as the pool), which is terminated at the deadline
(SIGTERM, then SIGKILL after a grace). Starting that process costs the fork and the imports the task needs
(tens of milliseconds from a forkserver): a price for atoms that asked to be bounded, not for the others.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from typing import Any

from flowkit.atom import Atom
from flowkit.context import AtomContext
from flowkit.exceptions import AtomTimeout, ExecutionError, NotSerializableError
from flowkit.failure import Failure

LOG = logging.getLogger(__name__)

KILL_GRACE_S = 1.0
"""After SIGTERM, how long a timed-out process has to exit before SIGKILL."""
START_LIMIT_S = 60.0
"""How long a call's own process may take to start (fork, imports, unpickling its arguments) before the
call fails: the timeout counts from when the call begins in that process, not from the fork."""

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


def call_in_own_process(
    mp_context: Any,
    call: Callable[..., tuple[bool, Any, list[float]]],
    atom: Atom,
    action: str,
    kwargs: dict[str, Any],
    ctx: AtomContext | None,
    timeout: float,
) -> tuple[bool, Any, list[float]]:
    """``call(atom, action, kwargs, ctx)`` in a new process of ``mp_context``, terminated at ``timeout``.

    ``call`` is the process-pool entry point (it returns ``(ok, value, progress)``). Raises
    NotSerializableError when the atom or its arguments cannot be sent to the process.
    """
    receive, send = mp_context.Pipe(duplex=False)
    proc = mp_context.Process(
        target=_child, args=(send, call, atom, action, kwargs, ctx), name=f"flowkit-timed-{atom.name}"
    )
    try:
        proc.start()
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        receive.close()
        send.close()
        raise NotSerializableError(atom.name, "the arguments", str(exc)) from exc
    send.close()
    try:
        if not _started(receive):
            _stop(proc)
            error = ExecutionError(
                f"the process for {action} of atom {atom.name!r} did not start within {START_LIMIT_S:g}s "
                f"(exit code {proc.exitcode})"
            )
            return False, Failure.from_exception(error), []
        if receive.poll(timeout):
            try:
                out: tuple[bool, Any, list[float]] = receive.recv()
            except EOFError:
                proc.join(KILL_GRACE_S)
                error = ExecutionError(
                    f"the process running {action} of atom {atom.name!r} died (exit code {proc.exitcode})"
                )
                return False, Failure.from_exception(error), []
            proc.join(KILL_GRACE_S)
            return out
        _stop(proc)
        LOG.warning(
            "%s of atom %r did not finish within its timeout of %gs: its process %s was stopped",
            action,
            atom.name,
            timeout,
            proc.pid,
        )
        where = f"process {proc.pid}"
        return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, where)), []
    finally:
        receive.close()


_STARTED = "started"


def _started(receive: Any) -> bool:
    """Whether the call's process said it started (False: it died or hung before it could)."""
    try:
        return bool(receive.poll(START_LIMIT_S) and receive.recv() == _STARTED)
    except EOFError:
        return False


def _stop(proc: Any) -> None:
    proc.terminate()
    proc.join(KILL_GRACE_S)
    if proc.is_alive():
        proc.kill()
        proc.join(KILL_GRACE_S)


def _child(
    send: Any,
    call: Callable[..., tuple[bool, Any, list[float]]],
    atom: Atom,
    action: str,
    kwargs: dict[str, Any],
    ctx: AtomContext | None,
) -> None:
    """In the call's own process: say it started, run it and send back what came out (``call`` checked
    that it pickles)."""
    send.send(_STARTED)
    send.send(call(atom, action, kwargs, ctx))
    send.close()
