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
import types
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

from flowkit.atom import Atom
from flowkit.context import CURRENT as _atom_context
from flowkit.context import AtomContext
from flowkit.engines.aio import CLASS_FLAGS, PLAIN, AsyncRunner, flags_of, is_async
from flowkit.engines.aio import NOT_STARTED as NOT_STARTED
from flowkit.engines.timed_processes import TimedProcesses
from flowkit.engines.timeouts import call_bounded
from flowkit.exceptions import CoroutineResult, ExecutionError, NotSerializableError
from flowkit.failure import Failure

_COROUTINE = types.CoroutineType

EXECUTE = "execute"
REVERT = "revert"
# NOT_STARTED (defined beside the async runner, which reports it too): the completion action of an
# execute that failed before the atom was called (nothing to revert).

LOG = logging.getLogger(__name__)
_NUDGE: Any = (-1, "nudge", False, None)
"""Put on a completion queue by :meth:`Dispatcher.nudge`: wakes the scheduler, completes nothing."""

Completion = tuple[int, str, bool, Any]
ProgressCallback = Callable[[str, float], None]
NodeProgress = Callable[[int, float], None]
"""``on_progress(node id, value)``: progress a dispatcher reports for a call it runs out of reach of the
task's context (another process, a remote worker), given to :meth:`Dispatcher.start` for one run."""


def call_atom(
    atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
) -> tuple[bool, Any]:
    """Run one action of one atom inside its context; never raises (a failure is a Failure)."""
    token = _atom_context.set(ctx)  # set_current, without its call on every atom call
    try:
        fn = atom.execute if action == EXECUTE else atom.revert
        result = fn(**kwargs)
        if type(result) is _COROUTINE:  # never stored as a result (see CoroutineResult)
            result.close()
            raise CoroutineResult(atom.name, action)
    except Exception:
        return False, Failure()
    finally:
        _atom_context.reset(token)
    return True, result


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
    """Runs calls inline in the scheduler's thread (the serial engine).

    Every dispatcher sends async calls to its :class:`~flowkit.engines.aio.AsyncRunner` (one event loop
    per engine, started on first use) and bounds timed calls (:mod:`~flowkit.engines.timeouts`). Inline,
    both block the scheduler until they end: the serial engine runs one atom at a time, async or not, and
    runs that loop in its own thread (:meth:`~flowkit.engines.aio.AsyncRunner.call_here`) rather than
    handing each call to a loop thread and back.
    """

    inline = True
    """Calls complete inside :meth:`submit`."""
    capacity = sys.maxsize
    """How many calls it runs at once. A fenced engine (one running for a job board claim) never has
    more than that many in flight, so no call waits in a queue after the write that allowed it: a
    newer claim that takes the flow over meanwhile finds nothing queued to start behind its back."""

    def __init__(self) -> None:
        self._done: deque[Completion] = deque()
        self._on_progress: NodeProgress | None = None
        self._default_timeout: float | None = None
        self._plain: set[type] = set()
        """Atom classes whose calls need nothing but a plain call (sync, no default timeout), as learnt
        by :meth:`_learn`: one set lookup per call is all a flow without timeouts or async pays."""
        self.aio = AsyncRunner()
        """The engine's event loop for async atoms; its thread starts with the first async call."""

    @property
    def default_timeout(self) -> float | None:
        """The timeout of atoms without one of their own (None: unbounded)."""
        return self._default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float | None) -> None:
        self._default_timeout = value
        self._plain.clear()

    def _learn(self, atom: Atom) -> None:
        """Remember ``atom``'s class as plain if it is (neither action async, no default timeout)."""
        flags_of(atom)
        if self._default_timeout is None and CLASS_FLAGS.get(type(atom)) is PLAIN:
            self._plain.add(type(atom))

    def plain_classes(self) -> set[type] | None:
        """The atom classes whose calls :meth:`submit` makes as plain calls in the caller's thread, or
        None when this dispatcher routes calls anywhere else (every subclass: threads, processes, workers,
        Map children). A caller that holds the scheduler's thread may then make such a call itself, exactly
        as :meth:`submit` would (the revert wave does: see :mod:`~flowkit.engines.revert`). The set is
        live: it grows as :meth:`submit` learns classes and empties when the default timeout changes."""
        return self._plain if type(self) is Dispatcher else None

    def start(self, on_progress: NodeProgress) -> None:
        """Acquire resources for one engine run, whose progress reports go to ``on_progress``.

        A run begins with no completions: one that ended by an exception may have left some, and
        they belong to calls of that run (a new run would take them for its own calls' results).
        """
        self._on_progress = on_progress
        _drop_leftovers(self._done.popleft, IndexError)

    def stop(self) -> None:
        """Release what :meth:`start` acquired."""
        self.aio.stop()

    def discard(self) -> None:
        """Drop the calls submitted but not started yet (the engine may no longer run them)."""

    def cancel(self, reason: str) -> None:
        """The run is cancelled (called from the canceller's thread, once): cancel the async executes
        on the loop, running or waiting for a slot; their reverts, and calls on threads, processes or
        workers, are left to end as the engine's cancel says (it waits for them)."""
        self.aio.cancel_all(executes_only=True)

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        """Run (or start running) one call; ``ctx`` is what the task sees as its context."""
        if type(atom) in self._plain and atom.timeout is None:
            # call_atom, inline: this is every call of the serial engine (one Python call less each)
            token = _atom_context.set(ctx)
            try:
                if kwargs:
                    result = (atom.execute if action == EXECUTE else atom.revert)(**kwargs)
                elif action == EXECUTE:  # no arguments (the usual no-op): a plain method call
                    result = atom.execute()
                else:
                    result = atom.revert()
                if type(result) is _COROUTINE:  # never stored as a result (see CoroutineResult)
                    result.close()
                    raise CoroutineResult(atom.name, action)
            except Exception:
                self._done.append((i, action, False, Failure()))
            else:
                self._done.append((i, action, True, result))
            finally:
                _atom_context.reset(token)
            return
        self._learn(atom)
        timeout = atom.timeout or self._default_timeout
        if is_async(atom, action):  # awaited on a loop of this thread: no hand-off to the loop thread
            self._done.append(self.aio.call_here(i, atom, action, kwargs, ctx, timeout))
        elif timeout is not None:
            ok, value = call_bounded(call_atom, atom, action, kwargs, ctx, timeout)
            self._done.append((i, action, ok, value))
        else:
            ok, value = call_atom(atom, action, kwargs, ctx)
            self._done.append((i, action, ok, value))

    def wait(self, timeout: float | None) -> Completion | None:
        """The next completion, or None when ``timeout`` passes first."""
        return self._done.popleft() if self._done else None

    def nudge(self) -> None:
        """Make a :meth:`wait` blocked in another thread return now (an event came for a durable
        wait; thread-safe). Inline calls never block: nothing to do."""

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
        self._timed: TimedProcesses | None = None
        """Processes for timed calls (the process engine), started with the first one."""

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
        self.aio.stop()
        timed, self._timed = self._timed, None
        if timed is not None:
            timed.close()
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
        timeout = atom.timeout or self._default_timeout
        if CLASS_FLAGS.get(type(atom)) is not PLAIN and is_async(atom, action):
            self.aio.submit(i, atom, action, kwargs, ctx, timeout, put)  # on the loop, not the pool
            return
        if timeout is not None and self._in_process:
            self._submit_own_process(i, atom, action, kwargs, ctx, timeout)
            return
        try:
            if timeout is not None:
                fut = executor.submit(call_bounded, call_atom, atom, action, kwargs, ctx, timeout)
            else:
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

    def _submit_own_process(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None, timeout: float
    ) -> None:
        """A timed call on the process engine: on a process that can be stopped at its deadline (see
        :mod:`~flowkit.engines.timed_processes`), waited for by a daemon thread; ``capacity`` at once."""
        import multiprocessing

        executor = self._running_executor()
        if self._timed is None:
            mp_context = getattr(executor, "_mp_context", None) or multiprocessing.get_context("forkserver")
            self._timed = TimedProcesses(mp_context, self.capacity)
        timed, put, on_progress = self._timed, self._queue.put, self._on_progress

        def wait_for_it() -> None:
            try:
                ok, value, progress = timed.call(call_in_process, atom, action, kwargs, ctx, timeout)
            except NotSerializableError as exc:
                put((i, _not_started(action), False, Failure.from_exception(exc)))
                return
            except Exception as exc:
                put((i, action, False, Failure.from_exception(_submit_error(atom, exc))))
                return
            if on_progress is not None:
                for p in progress:
                    on_progress(i, p)
            put((i, action, ok, value))

        threading.Thread(target=wait_for_it, name=f"flowkit-timed-{atom.name}", daemon=True).start()

    def wait(self, timeout: float | None) -> Completion | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if item is _NUDGE else item

    def nudge(self) -> None:
        self._queue.put(_NUDGE)

    def poll(self) -> Completion | None:
        q = self._queue
        if not q.qsize():  # one reader (the engine): qsize() > 0 holds until it reads
            return None
        item = q.get_nowait()
        return None if item is _NUDGE else item


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
        self._pending: deque[tuple[int, Atom, str, dict[str, Any], AtomContext | None, float | None]] = (
            deque()
        )
        self._lock = threading.Lock()
        self._draining = 0

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        executor = self._running_executor()
        if type(atom) in self._plain and atom.timeout is None:
            self._pending.append((i, atom, action, kwargs, ctx, None))
        else:
            self._learn(atom)
            timeout = atom.timeout or self._default_timeout
            if is_async(atom, action):  # on the loop: it holds no pool thread
                self.aio.submit(i, atom, action, kwargs, ctx, timeout, self._queue.put)
                return
            self._pending.append((i, atom, action, kwargs, ctx, timeout))
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
                i, atom, action, kwargs, ctx, timeout = pending.popleft()
            except IndexError:
                with lock:
                    if not pending:  # checked under the lock submit() takes: no call is stranded
                        self._draining -= 1
                        return
                continue
            try:
                if timeout is None:
                    ok, value = call_atom(atom, action, kwargs, ctx)
                else:  # this pool thread waits at most until the deadline (see engines.timeouts)
                    ok, value = call_bounded(call_atom, atom, action, kwargs, ctx, timeout)
            except BaseException:
                # SystemExit, KeyboardInterrupt: a pool thread cannot act on them, the scheduler
                # can: the flow reverts and run() raises them in the caller's thread.
                ok, value = False, Failure.from_base_exception()
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
            item = take()
        except empty:
            break
        if item is not _NUDGE:
            dropped.append(item)
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
