"""Async atoms: ``async def execute``/``revert`` run on one event loop per engine, on a thread it owns.

Why a loop thread and not the pool: an async call spends its time waiting, so it needs no thread of its
own. One loop runs thousands of them at once on one thread, and they never hold one of the parallel
engine's ``max_workers`` threads. The loop (and its thread) starts the first time an async call is
submitted, so a flow without async atoms never pays for it, and stops when the engine's run ends.

``max_async`` bounds how many async calls run at once on the loop; the others wait in the runner's
queue (costing no thread, and no asyncio task until a slot is free). A call with a timeout is cancelled
when it passes it and fails with :class:`~flowkit.exceptions.AtomTimeout`. A coroutine that blocks the
loop (``time.sleep`` instead of ``await asyncio.sleep``) holds every other async call back and cannot be
cancelled: async code must await.

The same runner serves a worker (:mod:`flowkit.workers.worker`): there it runs the async tasks of the
requests the worker took.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowkit.atom import Atom
from flowkit.context import AtomContext, reset_current, set_current
from flowkit.exceptions import AtomTimeout, ExecutionError, InvalidFlowError
from flowkit.failure import Failure

if TYPE_CHECKING:
    import asyncio

# asyncio is imported when the first async call comes (it costs ~20 ms at import): a process that never
# runs an async atom never imports it.

LOG = logging.getLogger(__name__)

NOT_STARTED = "not-started"
"""Completion action of an execute that failed before the atom was called (nothing to revert): also
what an async execute cancelled while it waited for a slot reports."""

DEFAULT_MAX_ASYNC = 1000
"""Async calls running at once on one engine's loop unless ``max_async=`` says otherwise."""

FLAGS = "_flowkit_async"
"""Where an atom whose class cannot tell (a FunctorTask) caches whether its execute and revert are async."""
PLAIN = (False, False)
"""The flags of an atom with neither async: dispatchers test for this one object, cheaply."""
CLASS_FLAGS: dict[type, tuple[bool, bool] | None] = {}
"""Per atom class: its flags, or None when each instance must be asked (its callables are per instance)."""


def flags_of(atom: Atom) -> tuple[bool, bool]:
    """Whether ``atom``'s execute and revert are ``async def``: :data:`PLAIN` (this very object) if neither.

    Found once per class (once per instance for a class that picks its callables per instance, like
    FunctorTask): the dispatchers ask for every call, and a flow without async atoms must not pay for it.
    """
    cls = type(atom)
    try:
        flags = CLASS_FLAGS[cls]
    except KeyError:
        flags = CLASS_FLAGS[cls] = _class_flags(cls)
    if flags is not None:
        return flags
    flags = atom.__dict__.get(FLAGS)
    if flags is None:
        flags = _normal(atom._execute_callable(), atom._revert_callable())
        atom.__dict__[FLAGS] = flags
    return flags


def is_async(atom: Atom, action: str) -> bool:
    """Whether ``atom``'s ``action`` (``"execute"`` or ``"revert"``) is an ``async def``."""
    flags = flags_of(atom)
    return flags[0] if action == "execute" else flags[1]


def _class_flags(cls: type) -> tuple[bool, bool] | None:
    per_instance = (
        cls._execute_callable is not Atom._execute_callable  # type: ignore[attr-defined]
        or cls._revert_callable is not Atom._revert_callable  # type: ignore[attr-defined]
    )
    if per_instance:
        return None
    return _normal(getattr(cls, "execute", None), getattr(cls, "revert", None))


def _normal(execute: Any, revert: Any) -> tuple[bool, bool]:
    flags = (inspect.iscoroutinefunction(execute), inspect.iscoroutinefunction(revert))
    return PLAIN if flags == PLAIN else flags


def check_max_async(value: Any) -> int:
    """``max_async`` as a positive int; InvalidFlowError naming the bad value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidFlowError(f"max_async must be a positive int, got {value!r}")
    return value


async def call_async(
    atom: Atom,
    action: str,
    kwargs: dict[str, Any],
    ctx: AtomContext | None,
    timeout: float | None,
    where: str = "the event loop",
) -> tuple[bool, Any]:
    """Await one async action of one atom inside its context, bounded by ``timeout``; never raises
    (a failure is a Failure), except the CancelledError of a cancel that is not its timeout."""
    import asyncio

    token = set_current(ctx)
    try:
        fn = atom.execute if action == "execute" else atom.revert
        if timeout is None:
            return True, await fn(**kwargs)
        async with asyncio.timeout(timeout) as bound:
            result = await fn(**kwargs)
        if bound.expired():  # it swallowed the cancel and went on: too late all the same
            LOG.warning("async %s of atom %r returned after its timeout; result discarded", action, atom.name)
            return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, where))
        return True, result
    except TimeoutError:
        if timeout is not None and bound.expired():
            return False, Failure.from_exception(AtomTimeout(atom.name, action, timeout, where))
        return False, Failure()
    except Exception:
        return False, Failure()
    finally:
        reset_current(token)


class _Call:
    """One atom call :meth:`AsyncRunner.submit` hands to the loop: its coroutine (:meth:`run`) and its
    report when cancelled (:meth:`cancelled`).

    One object with slots rather than two closures over eight cells: the loop may hold thousands at once
    (an unordered flow of async atoms submits them all), and every such object is one more for the
    cyclic garbage collector to trace (its full collections were half the run at 10,000 calls).
    """

    __slots__ = ("action", "atom", "began", "ctx", "i", "kwargs", "put", "timeout")

    def __init__(
        self,
        i: int,
        atom: Atom,
        action: str,
        kwargs: dict[str, Any],
        ctx: AtomContext | None,
        timeout: float | None,
        put: Callable[[tuple[int, str, bool, Any]], None],
    ) -> None:
        self.i, self.atom, self.action, self.kwargs = i, atom, action, kwargs
        self.ctx, self.timeout, self.put = ctx, timeout, put
        self.began = False

    async def run(self) -> None:
        self.began = True
        ok, value = await call_async(self.atom, self.action, self.kwargs, self.ctx, self.timeout)
        self.put((self.i, self.action, ok, value))

    def cancelled(self) -> None:
        action = self.action
        unstarted = action == "execute" and not self.began
        self.put((self.i, NOT_STARTED if unstarted else action, False, _cancelled(self.atom, action)))


class AsyncRunner:
    """One event loop on a daemon thread, started on first use; runs coroutines ``max_async`` at a time.

    Thread-safe :meth:`spawn` from any thread. Spawns are batched: the loop is woken once for all the
    calls submitted since it last looked (a wake-up is a write to its self-pipe: once per batch, not
    once per call). A call becomes an asyncio task only when a slot is free: those waiting for one stay
    in the queue (a task and its coroutine each, for thousands of waiting calls, cost the collector more
    than the calls themselves).
    """

    def __init__(self, max_async: int = DEFAULT_MAX_ASYNC, name: str = "flowkit-async") -> None:
        self.max_async = check_max_async(max_async)
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: deque[tuple[Callable[[], Awaitable[None]], Callable[[], None] | None, bool]] = deque()
        self._scheduled = False
        self._tasks: dict[asyncio.Task[None], tuple[bool, Callable[[], None] | None]] = {}
        """Each call running on the loop: whether a cancel of the executes leaves it be (a revert), and
        what to call if it is cancelled."""
        self._cancelling = False
        """The engine's run was cancelled: an execute taken from now on is cancelled before it starts."""
        self._here: asyncio.AbstractEventLoop | None = None
        """The loop :meth:`call_here` runs in its caller's thread (made on first use, closed by stop)."""
        self._current: asyncio.Task[tuple[bool, Any]] | None = None
        """The call :meth:`call_here` is running now (what a cancel from another thread cancels)."""

    @property
    def running(self) -> bool:
        """Whether the loop thread is up (it starts on the first :meth:`spawn`)."""
        return self._thread is not None

    def spawn(
        self,
        make: Callable[[], Awaitable[None]],
        cancelled: Callable[[], None] | None = None,
        undo: bool = False,
    ) -> None:
        """Run ``await make()`` on the loop, when a slot is free; ``make`` reports its own outcome, and
        ``cancelled()`` is called if it is cancelled (by :meth:`cancel_all` or :meth:`stop`), running or
        still waiting for a slot. An ``undo`` (a revert) is left alone by an engine's cancel
        (``cancel_all(executes_only=True)``)."""
        self._pending.append((make, cancelled, undo))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
            loop = self._loop if self._loop is not None else self._start()
        loop.call_soon_threadsafe(self._take_pending)

    def submit(
        self,
        i: int,
        atom: Atom,
        action: str,
        kwargs: dict[str, Any],
        ctx: AtomContext | None,
        timeout: float | None,
        put: Callable[[tuple[int, str, bool, Any]], None],
    ) -> None:
        """Run one async atom call; its completion ``(i, action, ok, value)`` goes to ``put`` (a failure
        when it is cancelled; an execute cancelled before it began reports :data:`NOT_STARTED`, so that
        nothing reverts what never ran)."""
        call = _Call(i, atom, action, kwargs, ctx, timeout, put)
        self.spawn(call.run, call.cancelled, undo=action != "execute")

    def call_here(
        self,
        i: int,
        atom: Atom,
        action: str,
        kwargs: dict[str, Any],
        ctx: AtomContext | None,
        timeout: float | None,
    ) -> tuple[int, str, bool, Any]:
        """Run one async atom call to its end on a loop of the caller's own thread; its completion.

        The serial engine's way: it waits for each call anyway, so it runs the loop itself instead of
        handing the call to the loop thread and taking the completion back (two thread hand-offs and a
        self-pipe wake-up per atom). A caller already inside a running loop (async code that called
        ``engine.run()``) cannot run another: its calls go to the loop thread as :meth:`submit` sends them.
        """
        import asyncio

        if asyncio._get_running_loop() is not None:
            done: queue.SimpleQueue[tuple[int, str, bool, Any]] = queue.SimpleQueue()
            self.submit(i, atom, action, kwargs, ctx, timeout, done.put)
            return done.get()
        loop = self._here
        if loop is None:
            loop = self._here = asyncio.new_event_loop()
        with self._lock:
            if self._cancelling and action == "execute":  # the run is cancelled: never starts
                return i, NOT_STARTED, False, _cancelled(atom, action)
            # published before its first step runs: a cancel from now on (call_soon_threadsafe) is
            # queued behind that step, so a cancelled call has always begun
            task = self._current = loop.create_task(call_async(atom, action, kwargs, ctx, timeout))
        try:
            ok, value = loop.run_until_complete(task)
        except asyncio.CancelledError:
            return i, action, False, _cancelled(atom, action)
        finally:
            with self._lock:
                self._current = None
        return i, action, ok, value

    def cancel_all(self, executes_only: bool = False) -> None:
        """Cancel every async call running or waiting for a slot (each reports a failure).

        ``executes_only`` is what an engine's cancel asks (from the canceller's thread): the executes are
        cancelled, those submitted later too (until :meth:`stop`), and the reverts are left to finish.
        """
        with self._lock:
            if executes_only:
                self._cancelling = True
            loop, current, here = self._loop, self._current, self._here
            if current is not None and here is not None:  # a call_here runs: cancel it on its loop
                here.call_soon_threadsafe(current.cancel)
        if loop is not None:
            loop.call_soon_threadsafe(self._cancel_tasks, executes_only)

    def stop(self) -> None:
        """Cancel what still runs, stop the loop and let its thread end (it is a daemon); close the loop
        of :meth:`call_here` (called by the thread that used it)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            here, self._here = self._here, None
            self._loop = self._thread = None
            self._scheduled = False
            self._cancelling = False
            self._pending.clear()  # submitted by a run that is over: never to run in the next one
        if here is not None:
            _close_here(here)
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(self._shut_down, loop)
        thread.join(5)
        if thread.is_alive():
            LOG.warning(
                "the event loop thread %s did not stop within 5 s (a coroutine blocks it)", self._name
            )

    # -- on the loop's thread ---------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        """Start the loop thread (called under the lock); the loop exists before this returns."""
        import asyncio

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve, args=(loop,), name=self._name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        return loop

    def _take_pending(self) -> None:
        with self._lock:
            self._scheduled = False  # before draining: a spawn from now on schedules another take
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Start queued calls while fewer than ``max_async`` run (called when calls come and when one
        ends); once the run is cancelled, a queued execute is reported cancelled instead of started."""
        import asyncio

        loop, pending, tasks = asyncio.get_running_loop(), self._pending, self._tasks
        if self._cancelling:
            self._drop_waiting(executes_only=True)
        while pending and len(tasks) < self.max_async:
            make, cancelled, undo = pending.popleft()
            task: asyncio.Task[None] = loop.create_task(make())  # type: ignore[arg-type]
            tasks[task] = (undo, cancelled)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A call's task is done: report it if it was cancelled, and give its slot to the next call."""
        _, cancelled = self._tasks.pop(task, (False, None))
        if cancelled is not None and task.cancelled():
            cancelled()
        if self._pending:
            self._start_waiting()

    def _drop_waiting(self, executes_only: bool) -> None:
        """Report the queued calls cancelled (only the executes: the reverts stay queued, in order)."""
        pending, kept = self._pending, []
        while pending:
            try:
                item = pending.popleft()
            except IndexError:  # (emptied by stop() from another thread)
                break
            if executes_only and item[2]:
                kept.append(item)
            elif item[1] is not None:
                item[1]()
        pending.extendleft(reversed(kept))

    def _cancel_tasks(self, executes_only: bool = False) -> None:
        self._drop_waiting(executes_only)
        for task, (undo, _) in list(self._tasks.items()):
            if not (executes_only and undo):
                task.cancel()

    def _shut_down(self, loop: asyncio.AbstractEventLoop) -> None:
        self._cancel_tasks()
        loop.call_soon(loop.stop)


def _cancelled(atom: Atom, action: str) -> Failure:
    return Failure.from_exception(ExecutionError(f"async {action} of atom {atom.name!r} was cancelled"))


def _close_here(loop: asyncio.AbstractEventLoop) -> None:
    """Close a :meth:`AsyncRunner.call_here` loop, first cancelling what its calls left behind (a call
    cut short by KeyboardInterrupt, tasks a coroutine started and did not await)."""
    import asyncio

    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    try:
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=1))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        if tasks:  # cancelled by stop(): let them finish their cleanup
            loop.run_until_complete(asyncio.wait(tasks, timeout=1))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
