"""Timed calls on the process engine: processes of our own, one call at a time, each stopped at its deadline.

A process can be killed, but futurist's (and the stdlib's) process pool cannot stop one call: killing one
of its processes breaks the pool and fails every call in it. So the process engine runs timed calls on a
small pool of its own (:class:`TimedProcesses`, at most the engine's ``max_workers`` processes, same
multiprocessing context as its pool): a process runs one call at a time and is reused while calls end in
time; at a deadline its process is stopped (SIGTERM, then SIGKILL after :data:`KILL_GRACE_S`) and
forgotten, and the next timed call starts a fresh one. Starting a process costs the fork and the task's
imports (on this machine about 0.2 s from a forkserver), paid once per process, not per call; the
timeout counts from when the call starts in the process, never from the fork.
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
"""How long a new process may take to start and unpickle its first call (imports) before the call fails."""

Outcome = tuple[bool, Any, list[float]]
"""``(ok, value, progress)``: what the process-pool entry point returns."""
_STARTED = "started"


class _Process:
    """One process of the pool and our end of its pipe."""

    def __init__(self, mp_context: Any) -> None:
        self.conn, child = mp_context.Pipe()
        self.proc = mp_context.Process(target=_serve, args=(child,), name="flowkit-timed", daemon=True)
        self.proc.start()
        child.close()

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.join(KILL_GRACE_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(KILL_GRACE_S)


class TimedProcesses:
    """At most ``size`` processes running timed calls, one call each at a time (any thread may call)."""

    def __init__(self, mp_context: Any, size: int) -> None:
        self._mp_context = mp_context
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Process] = []
        self._closed = False

    def call(
        self,
        call: Callable[..., Outcome],
        atom: Atom,
        action: str,
        kwargs: dict[str, Any],
        ctx: AtomContext | None,
        timeout: float,
    ) -> Outcome:
        """``call(atom, action, kwargs, ctx)`` in one of the processes, stopped at ``timeout``.

        Blocks while all ``size`` processes are busy. Raises NotSerializableError when the atom or its
        arguments cannot be sent (nothing ran).
        """
        with self._slots:
            proc = self._take()
            try:
                proc.conn.send((call, atom, action, kwargs, ctx))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                self._give(proc)  # pickling failed before anything was written: the process is fine
                raise NotSerializableError(atom.name, "the arguments", str(exc)) from exc
            except OSError:  # it died while idle: start another for this call
                proc.stop()
                proc = _Process(self._mp_context)
                proc.conn.send((call, atom, action, kwargs, ctx))
            return self._outcome(proc, atom, action, timeout)

    def close(self) -> None:
        """Stop the idle processes (a busy one is stopped by the thread waiting for it, at its end)."""
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for proc in idle:
            proc.stop()

    def _outcome(self, proc: _Process, atom: Atom, action: str, timeout: float) -> Outcome:
        conn = proc.conn
        try:
            if not (conn.poll(START_LIMIT_S) and conn.recv() == _STARTED):
                raise EOFError
            if conn.poll(timeout):
                out: Outcome = conn.recv()
                self._give(proc)
                return out
        except (EOFError, OSError):
            proc.stop()
            error = ExecutionError(
                f"the process running {action} of atom {atom.name!r} died (exit code {proc.proc.exitcode}); "
                f"see its output"
            )
            return False, Failure.from_exception(error), []
        pid = proc.proc.pid
        proc.stop()
        LOG.warning(
            "%s of atom %r did not finish within its timeout of %gs: its process %s was stopped",
            action,
            atom.name,
            timeout,
            pid,
        )
        return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, f"process {pid}")), []

    def _take(self) -> _Process:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Process(self._mp_context)

    def _give(self, proc: _Process) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(proc)
                return
        proc.stop()


def _serve(conn: Any) -> None:
    """In a pool process: run the calls that come, one at a time, until told to stop (None) or orphaned."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        call, atom, action, kwargs, ctx = msg
        conn.send(_STARTED)
        conn.send(call(atom, action, kwargs, ctx))
