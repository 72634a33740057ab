"""The engine side of durable waits (:mod:`flowkit.waits`): deadlines, events, and parking.

An engine whose flow has wait atoms owns one :class:`Waits`. When the run starts a wait atom it does not
hand it to the dispatcher: :meth:`Waits.begin` records it RUNNING, saves its deadline (epoch seconds)
and awaited event in the atom's details (``meta["wait"]``) and keeps it in a deadline heap and an event
map. The run's loop sleeps until the next deadline or event (:meth:`Waits.timeout`, the engine's wake
event, the dispatcher's :meth:`~flowkit.engines.dispatch.Dispatcher.nudge`) and :meth:`Waits.fire`
completes what is due: a Sleep succeeds, a WaitForEvent whose timeout passed fails with
:class:`~flowkit.exceptions.WaitTimeout`, one whose event came succeeds with the payload. A flow with no
wait atom has no :class:`Waits` at all: nothing here costs it anything.

Resuming an atom that was RUNNING (after a suspend, a crash or a park) reads the saved deadline back, so
the remaining time is kept, and looks for its event in persistence (:mod:`flowkit.persistence.events`),
so an event sent meanwhile is found. An atom that starts afresh (PENDING) gets a new deadline.

Parking (``park=True``, what a conductor asks for): when nothing but waits is left, the run suspends the
flow and the engine's :attr:`Waits.parked` says until when and for which events, so the conductor can
give the job back to the board instead of holding a thread for it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowkit.compiler import CompiledFlow
from flowkit.engines.dispatch import EXECUTE, REVERT
from flowkit.exceptions import WaitTimeout
from flowkit.failure import Failure
from flowkit.persistence import events
from flowkit.persistence.recorder import WAIT_META, BackendRecorder
from flowkit.states import AtomState, FlowState
from flowkit.waits import Wait, WaitForEvent

if TYPE_CHECKING:
    from flowkit.engines.run import Run

S = AtomState
EVENT_POLL = 2.0
"""Seconds between looks in persistence for an awaited event sent by another process, while a flow
with persistence waits in-process (an event sent through this engine wakes it at once)."""


@dataclass(frozen=True)
class Parked:
    """Why a run stopped with only waits left: the earliest deadline (epoch seconds, None: none) and
    the events any one of which should wake it."""

    wake_at: float | None
    events: tuple[str, ...]


class Waits:
    """The durable waits of one engine; see the module docstring. Thread-safe: :meth:`deliver`."""

    def __init__(self, compiled: CompiledFlow, wake: threading.Event, nudge: Callable[[], None]) -> None:
        self.nodes = frozenset(compiled.nodes_of(Wait))
        self.pending: dict[int, tuple[float | None, str | None]] = {}
        """Node -> (deadline, event) of each wait in progress in this run."""
        self.park = False
        """Set by the engine's ``park`` option: stop the run when only waits are left."""
        self.parked: Parked | None = None
        """Set when the last run parked (None: it did not)."""
        self.poll = EVENT_POLL
        self._heap: list[tuple[float, int]] = []
        self._by_event: dict[str, set[int]] = {}
        self._saved: dict[int, dict[str, Any]] = {}
        """In-memory flows: each wait's meta, as persistence would keep it."""
        self._retained: dict[str, Any] = {}
        """Events sent to an engine without persistence: kept for waits that come later."""
        self._inbox: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = wake
        self._nudge = nudge
        self._next_poll = 0.0
        self.backend: Any = None
        """The persistence backend of the run (None: in memory); see :meth:`bind`."""

    # -- events from other threads -------------------------------------------------------------------

    def deliver(self, name: str, payload: Any, retain: bool) -> None:
        """An event for this engine (from any thread): wake the run's loop to take it."""
        with self._lock:
            if retain:
                self._retained[name] = payload
            self._inbox.append((name, payload))
        self._wake.set()
        self._nudge()

    # -- the run's side --------------------------------------------------------------------------------

    def reset(self) -> None:
        """A new run: nothing is in progress (atoms still RUNNING begin again from their saved meta)."""
        self.pending.clear()
        self._heap.clear()
        self._by_event.clear()
        self.parked = None

    def begin(self, run: Run, i: int, kwargs: dict[str, Any]) -> None:
        """Start wait ``i`` (instead of dispatching it): record it, save its meta, and keep it."""
        atom = run.c.atoms[i]
        assert isinstance(atom, Wait)
        resumed = run.st.states[i] is S.RUNNING
        run.set_atom(i, S.RUNNING)
        meta = self._meta(run, i) if resumed else None
        if meta is None:
            try:
                deadline = atom.deadline(kwargs, time.time())
                event = atom.event_name(kwargs)
            except Exception:
                self._complete(run, i, False, Failure())
                return
            meta = {"deadline": deadline, "event": event}
            self._save(run, i, meta)
        deadline, event = meta.get("deadline"), meta.get("event")
        if event is not None:
            found = self._lookup(run, [event])
            if event in found:
                self._complete(run, i, True, found[event])
                return
            self._by_event.setdefault(event, set()).add(i)
        if deadline is not None:
            if deadline <= time.time():
                self._expire(run, i)
                return
            heapq.heappush(self._heap, (deadline, i))
        self.pending[i] = (deadline, event)

    def timeout(self) -> float | None:
        """Seconds until the next deadline or look in persistence (None: wait for an event)."""
        when = self._heap[0][0] if self._heap else None
        if self._by_event and self._polls():
            when = self._next_poll if when is None else min(when, self._next_poll)
        return None if when is None else max(0.0, when - time.time())

    def fire(self, run: Run) -> None:
        """Complete every wait that is due now: an event came (sent here or found in persistence), or
        its deadline passed."""
        with self._lock:
            inbox, self._inbox = self._inbox, []
        for name, payload in inbox:
            for i in sorted(self._by_event.pop(name, ())):
                self._complete(run, i, True, payload)
        if self._by_event and self._polls() and time.time() >= self._next_poll:
            self._next_poll = time.time() + self.poll
            for name, event in self._lookup(run, list(self._by_event)).items():
                for i in sorted(self._by_event.pop(name, ())):
                    self._complete(run, i, True, event)
        heap, now = self._heap, time.time()
        while heap and heap[0][0] <= now:
            deadline, i = heapq.heappop(heap)
            if i in self.pending and self.pending[i][0] == deadline:  # not a restarted wait's old one
                self._expire(run, i)

    def idle(self, run: Run) -> bool:
        """Nothing runs and only waits (maybe retry delays) are left: sleep until one is due, or park.

        Returns True when the forward pass is over (parked).
        """
        self._drop_stale(run)
        if not self.pending or run.ready:
            return False
        if self.park and not run.timers and not run.ready:
            self._next_poll = 0.0  # a last look, in persistence too: an event sent meanwhile is taken
            self.fire(run)
            if self.pending and not run.ready and not run.failed:
                self.parked = Parked(
                    min((d for d, _ in self.pending.values() if d is not None), default=None),
                    tuple(sorted({e for _, e in self.pending.values() if e is not None})),
                )
                run.set_flow(FlowState.SUSPENDED)
                return True
            return False
        self._wake.clear()
        if run.suspend.is_set():  # a suspend between the drain's check and the clear above
            return False
        timeouts = [t for t in (self.timeout(), run.timers.timeout()) if t is not None]
        with self._lock:
            idle = not self._inbox
        if idle:
            self._wake.wait(min(timeouts) if timeouts else None)
        run.timers.fire(run.ready)
        self.fire(run)
        return False

    def revert(self, run: Run, i: int, kwargs: dict[str, Any]) -> None:
        """Revert wait ``i`` in the engine's thread (a revert wave counted it as running): a wait still in
        progress (a cancel, a sibling's failure) stops waiting; nothing else is left to undo, so its
        revert never travels to a pool or a worker (which may not know the wait's class)."""
        self.pending.pop(i, None)
        self._forget_event(i)
        self._saved.pop(i, None)
        try:
            out = run.c.atoms[i].revert(**kwargs)
        except Exception:
            run.finish(i, REVERT, False, Failure())
        else:
            run.finish(i, REVERT, True, out)

    # -- helpers -----------------------------------------------------------------------------------------

    def _complete(self, run: Run, i: int, ok: bool, value: Any) -> None:
        self.pending.pop(i, None)
        if isinstance(value, events.Event):
            value = value.payload
        if run.st.states[i] is not S.RUNNING:  # reverted or reset meanwhile: not ours to finish
            return
        run.running += 1  # finish() counts a call down; a wait never counted as one
        run.finish(i, EXECUTE, ok, value)
        self._saved.pop(i, None)

    def _expire(self, run: Run, i: int) -> None:
        """Wait ``i`` reached its deadline: a sleep is over, an event wait timed out."""
        atom = run.c.atoms[i]
        _, event = self.pending.get(i, (None, None))
        if isinstance(atom, WaitForEvent):
            self._forget_event(i)
            timeout = atom.wait_timeout or 0.0
            failure = Failure.from_exception(WaitTimeout(atom.name, event or atom.event, timeout))
            self._complete(run, i, False, failure)
        else:
            self._complete(run, i, True, None)

    def _forget_event(self, i: int) -> None:
        for name in [n for n, nodes in self._by_event.items() if i in nodes]:
            self._by_event[name].discard(i)
            if not self._by_event[name]:
                del self._by_event[name]

    def _drop_stale(self, run: Run) -> None:
        """Forget waits a revert or a retry took out of RUNNING."""
        for i in [i for i in self.pending if run.st.states[i] is not S.RUNNING]:
            del self.pending[i]
            self._forget_event(i)

    def bind(self, run: Run) -> None:
        """Take the run's persistence backend (None: an in-memory flow, which never polls)."""
        self.backend = run.st.saved_backend
        self._next_poll = time.time() + self.poll

    def _polls(self) -> bool:
        return self.backend is not None

    def _lookup(self, run: Run, names: list[str]) -> dict[str, Any]:
        """Events already sent for ``names``: from persistence, or kept by this engine."""
        backend = self.backend
        if backend is not None:
            return events.latest_events(backend, names)
        with self._lock:
            return {n: self._retained[n] for n in names if n in self._retained}

    def _meta(self, run: Run, i: int) -> dict[str, Any] | None:
        recorder = run.st.recorder
        if isinstance(recorder, BackendRecorder):
            saved = recorder.atom_meta(i).get(WAIT_META)
            return dict(saved) if isinstance(saved, dict) else None
        return self._saved.get(i)

    def _save(self, run: Run, i: int, meta: dict[str, Any]) -> None:
        recorder = run.st.recorder
        if isinstance(recorder, BackendRecorder):
            recorder.save_atom_meta(i, {**recorder.atom_meta(i), WAIT_META: meta})
        else:
            self._saved[i] = meta
