"""Where atoms' ``execute``/``revert`` calls run: inline, on threads, on processes, or elsewhere.

A dispatcher takes ``(node id, atom, action, kwargs)`` and later hands back one
completion ``(node id, action, ok, value)``, where ``value`` is the result or a
:class:`~flowkit.failure.Failure`. The engine's scheduler is the only consumer, on
one thread, so a completion queue is all the synchronisation there is.
"""

from __future__ import annotations

import logging
import pickle
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

from flowkit.atom import Atom
from flowkit.context import AtomContext, reset_current, set_current
from flowkit.exceptions import ExecutionError, NotSerializableError
from flowkit.failure import Failure

EXECUTE = "execute"
REVERT = "revert"
NOT_STARTED = "not-started"
"""Completion action of an execute that failed before the atom was called (nothing to revert)."""

LOG = logging.getLogger(__name__)

Completion = tuple[int, str, bool, Any]
ProgressCallback = Callable[[str, float], None]
NodeProgress = Callable[[int, float], None]
"""``on_progress(node id, value)``: progress a dispatcher reports for a call it runs out of reach of the
task's context (another process, a remote worker), given to :meth:`Dispatcher.start` for one run."""


def call_atom(
    atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
) -> tuple[bool, Any]:
    """Run one action of one atom inside its context; never raises (a failure is a Failure)."""
    token = set_current(ctx)
    try:
        fn = atom.execute if action == EXECUTE else atom.revert
        return True, fn(**kwargs)
    except Exception:
        return False, Failure()
    finally:
        reset_current(token)


def call_in_process(
    atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
) -> tuple[bool, Any, list[float]]:
    """Process-pool entry point: also collects progress, and checks the result can travel back."""
    progress: list[float] = []
    if ctx is not None:
        ctx = AtomContext(ctx.atom_name, ctx.atom_uuid, lambda _name, value: progress.append(value))
    ok, value = call_atom(atom, action, kwargs, ctx)
    if ok:
        try:
            pickle.dumps(value)
        except Exception as exc:
            ok, value = (
                False,
                Failure.from_exception(NotSerializableError(atom.name, "the result", repr(exc))),
            )
    return ok, value, progress


class Dispatcher:
    """Runs calls inline in the scheduler's thread (the serial engine)."""

    inline = True
    """Calls complete inside :meth:`submit`."""
    capacity = sys.maxsize
    """How many calls it runs at once. A fenced engine (one running for a job board claim) never has
    more than that many in flight, so no call waits in a queue after the write that allowed it: a
    newer claim that takes the flow over meanwhile finds nothing queued to start behind its back."""

    def __init__(self) -> None:
        self._done: deque[Completion] = deque()
        self._on_progress: NodeProgress | None = None

    def start(self, on_progress: NodeProgress) -> None:
        """Acquire resources for one engine run, whose progress reports go to ``on_progress``.

        A run begins with no completions: one that ended by an exception may have left some, and
        they belong to calls of that run (a new run would take them for its own calls' results).
        """
        self._on_progress = on_progress
        _drop_leftovers(self._done.popleft, IndexError)

    def stop(self) -> None:
        """Release what :meth:`start` acquired."""

    def discard(self) -> None:
        """Drop the calls submitted but not started yet (the engine may no longer run them)."""

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        """Run (or start running) one call; ``ctx`` is what the task sees as its context."""
        ok, value = call_atom(atom, action, kwargs, ctx)
        self._done.append((i, action, ok, value))

    def wait(self, timeout: float | None) -> Completion | None:
        """The next completion, or None when ``timeout`` passes first."""
        return self._done.popleft() if self._done else None

    def poll(self) -> Completion | None:
        """A completion that is already there, or None at once (the engine takes every finished
        call in one step, as TaskFlow's engine analyzes every finished future at once)."""
        return self.wait(0)


class ExecutorDispatcher(Dispatcher):
    """Runs calls on a ``concurrent.futures`` executor (futurist threads or processes, or the user's)."""

    inline = False

    def __init__(
        self,
        factory: Callable[[], futures.Executor] | None = None,
        executor: futures.Executor | None = None,
        in_process: bool = False,
    ) -> None:
        super().__init__()
        self._factory = factory
        self._given = executor
        self._executor: futures.Executor | None = executor
        self._queue: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._in_process = in_process
        self._discarding = False

    def start(self, on_progress: NodeProgress) -> None:
        super().start(on_progress)
        _drop_leftovers(self._queue.get_nowait, queue.Empty)
        if self._executor is None and self._factory is not None:
            self._executor = self._factory()

    def _running_executor(self) -> futures.Executor:
        if self._executor is None:
            raise ExecutionError("the engine's executor is not running (start() was not called)")
        return self._executor

    def stop(self) -> None:
        discarding, self._discarding = self._discarding, False
        if self._given is None and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=discarding)
            self._executor = None

    def discard(self) -> None:
        """Calls still queued in an executor of our own are cancelled when it stops (a caller's
        executor is left alone: its queue is not ours to empty)."""
        self._discarding = True

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        executor = self._running_executor()
        put = self._queue.put
        try:
            fn: Callable[..., Any] = call_in_process if self._in_process else call_atom
            fut = executor.submit(fn, atom, action, kwargs, ctx)
        except Exception as exc:
            put((i, _not_started(action), False, Failure.from_exception(_submit_error(atom, exc))))
            return
        in_process = self._in_process
        on_progress = self._on_progress

        def done(f: futures.Future[Any]) -> None:
            try:
                out = f.result()
            except BaseException as exc:
                err = _submit_error(atom, exc)
                unsent = isinstance(err, NotSerializableError) and err.what == "the arguments"
                put((i, _not_started(action) if unsent else action, False, Failure.from_exception(err)))
                return
            if in_process:
                ok, value, progress = out
                if on_progress is not None:
                    for p in progress:
                        on_progress(i, p)
                put((i, action, ok, value))
            else:
                put((i, action, out[0], out[1]))

        fut.add_done_callback(done)

    def wait(self, timeout: float | None) -> Completion | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def poll(self) -> Completion | None:
        q = self._queue
        return q.get_nowait() if q.qsize() else None  # one reader (the engine): qsize() > 0 holds


class ThreadDispatcher(ExecutorDispatcher):
    """Runs calls on a thread pool through at most ``max_workers`` draining loops.

    Submitting one future per atom costs about 30 us in a thread pool (future, work item,
    condition variables, callback). Instead, each pool thread runs a loop that takes the
    next call from a shared deque until it is empty: the same parallelism (one call per
    thread at a time), a few microseconds per atom.
    """

    def __init__(
        self,
        max_workers: int,
        factory: Callable[[], futures.Executor] | None = None,
        executor: futures.Executor | None = None,
    ) -> None:
        super().__init__(factory=factory, executor=executor)
        self._max_workers = max_workers
        self.capacity = max_workers
        self._pending: deque[tuple[int, Atom, str, dict[str, Any], AtomContext | None]] = deque()
        self._lock = threading.Lock()
        self._draining = 0

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        executor = self._running_executor()
        self._pending.append((i, atom, action, kwargs, ctx))
        with self._lock:
            if self._draining >= self._max_workers:
                return
            self._draining += 1
        try:
            executor.submit(self._drain)
        except Exception as exc:
            with self._lock:
                self._draining -= 1
            raise ExecutionError(f"the thread pool refused work: {exc}") from exc

    def discard(self) -> None:
        self._pending.clear()  # a draining loop that finds it empty ends

    def _drain(self) -> None:
        pending, put, lock = self._pending, self._queue.put, self._lock
        while True:
            try:
                i, atom, action, kwargs, ctx = pending.popleft()
            except IndexError:
                with lock:
                    if not pending:  # checked under the lock submit() takes: no call is stranded
                        self._draining -= 1
                        return
                continue
            try:
                ok, value = call_atom(atom, action, kwargs, ctx)
            except BaseException:
                # SystemExit, KeyboardInterrupt: a pool thread cannot act on them, the scheduler
                # can: the flow reverts and run() raises them in the caller's thread.
                ok, value = False, Failure()
            put((i, action, ok, value))


def thread_pool(max_workers: int) -> futures.Executor:
    """A futurist thread pool that shuts down as soon as its work is done.

    futurist's idle workers poll their queue once a second, so a plain shutdown costs up
    to a second per engine run (TaskFlow's floor). Waking each worker with a no-op item
    after telling it to stop removes that wait.
    """
    import futurist
    from futurist import _utils

    class PromptThreadPool(futurist.ThreadPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            work_queue = getattr(self, "_work_queue", None)
            workers = [w for w in getattr(self, "_workers", ()) if w.is_alive()]
            if wait and work_queue is not None and workers:
                work_queue.join()
                for w in workers:
                    w.stop()
                for _ in workers:
                    work_queue.put(_utils.WorkItem(futures.Future(), _noop))
            super().shutdown(wait=wait, cancel_futures=cancel_futures)

    return PromptThreadPool(max_workers=max_workers)


def _noop() -> None:
    return None


def _drop_leftovers(take: Callable[[], Completion], empty: type[Exception]) -> None:
    """Empty a completion queue with ``take`` (raising ``empty`` when done), logging what it held."""
    dropped: list[Completion] = []
    while True:
        try:
            dropped.append(take())
        except empty:
            break
    if dropped:
        LOG.warning(
            "dropped %d completion(s) left by a previous run that ended early: %s",
            len(dropped),
            ", ".join(f"node {i} {action}" for i, action, _ok, _value in dropped),
        )


def _not_started(action: str) -> str:
    return NOT_STARTED if action == EXECUTE else action


def _submit_error(atom: Atom, exc: BaseException) -> BaseException:
    if isinstance(exc, pickle.PicklingError | TypeError | AttributeError) and "pickle" in str(exc).lower():
        return NotSerializableError(atom.name, "the arguments", str(exc))
    if isinstance(exc, FlowkitErrorTypes):
        return exc
    err = ExecutionError(f"atom {atom.name!r} could not be run by the executor: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


FlowkitErrorTypes = (NotSerializableError, ExecutionError)
