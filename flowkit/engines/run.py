"""One ``run()`` of an engine: all per-run state, and the forward hot loop.

A :class:`Run` is made fresh by every ``Engine.run_iter()`` and owns everything that lives only
as long as that run: the counters and queues of the scheduler, the failures not handled yet,
the decider outcomes, the retry delay timers, the revert wave in progress. Saved state lives in
:class:`~flowkit.storage.Storage`; the run changes it only through :meth:`Run.set_atom` and
:meth:`Run.set_flow`, which record it (storage, then notifiers) before anything acts on it.

The hot loop is :meth:`Run.forward`: schedule a ready atom (:meth:`start`: bind its arguments,
record RUNNING, hand it to the dispatcher), take one completion (:meth:`finish`: record the
result, :meth:`release` the successors by decrementing one counter each). Everything that is
not per atom (failures, suspend, timers, the end) happens in :meth:`_drained`, once nothing
runs. The other parts are functions of the run: :mod:`~flowkit.engines.revert` (revert waves),
:mod:`~flowkit.engines.retrying` (retry decisions and delays), :mod:`~flowkit.engines.deciders`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator
from itertools import compress
from operator import not_
from typing import TYPE_CHECKING, Any

from flowkit.atom import extract
from flowkit.compiler import JUNCTION, RETRY, CompiledFlow
from flowkit.context import AtomContext, contexts_for
from flowkit.engines import deciders
from flowkit.engines.cancel import revert_cancelled
from flowkit.engines.dispatch import EXECUTE, NOT_STARTED, REVERT, Dispatcher
from flowkit.engines.retrying import DelayTimers, handle_failures
from flowkit.engines.revert import finish_interrupted_reverts, revert_all
from flowkit.engines.task_progress import progress_nodes, tell
from flowkit.engines.together import finish_together
from flowkit.exceptions import FlowkitError, NotFound
from flowkit.failure import Failure
from flowkit.notifier import EVENT_UPDATE_PROGRESS, Notifier
from flowkit.states import ATOM_DONE, AtomState, EngineState, FlowState
from flowkit.storage import Storage

if TYPE_CHECKING:
    from flowkit.engines.cancel import CancelToken
    from flowkit.engines.revert import RevertWave
    from flowkit.engines.slots import AsyncSlots
    from flowkit.engines.waiting import Waits

S = AtomState
Step = FlowState | EngineState
"""What a run yields: an engine step, or (last) the flow's final state."""
SCHEDULING, WAITING, ANALYZING = EngineState.SCHEDULING, EngineState.WAITING, EngineState.ANALYZING
PENDING, RUNNING, SUCCESS, FAILURE = S.PENDING, S.RUNNING, S.SUCCESS, S.FAILURE
"""Bound once: an enum member read off its class goes through EnumType.__getattr__'s slow path (about
as much as the rest of a state check), and these are read per atom."""
_KIND_NAMES = ("task", "retry", "junction")
_NO_WAITS: dict[int, object] = {}
"""The pending waits of a flow that has no wait atom (never written)."""
_LEFTOVERS = frozenset({S.FAILURE, S.REVERTED, S.REVERT_FAILURE, S.REVERTING})
"""Atom states a previous run left that this run starts afresh."""


class Flag:
    """A yes/no set from any thread and read by the scheduler (``Engine.suspend()``): the part of
    ``threading.Event`` the engine uses, minus ``wait``, so that the hot loops read an attribute
    (``on``) before each start instead of calling ``is_set()``."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False

    def set(self) -> None:
        self.on = True

    def clear(self) -> None:
        self.on = False

    def is_set(self) -> bool:
        return self.on


class Run:
    """The state of one engine run and its forward pass; see the module docstring."""

    __slots__ = (
        "atom_notifier",
        "c",
        "cancel",
        "cap",
        "contexts",
        "decided",
        "dispatcher",
        "failed",
        "ignored",
        "notifier",
        "quiet",
        "ready",
        "report",
        "report_details",
        "revert_failed",
        "running",
        "slots",
        "st",
        "stop_as",
        "suspend",
        "timers",
        "told",
        "told_late",
        "waiting",
        "waits",
        "wake",
        "wave",
    )

    def __init__(
        self,
        compiled: CompiledFlow,
        storage: Storage,
        dispatcher: Dispatcher,
        notifier: Notifier,
        atom_notifier: Notifier,
        suspend: Flag,
        wake: threading.Event,
        cap: int,
        cancel: CancelToken | None = None,
        waits: Waits | None = None,
        slots: AsyncSlots | None = None,
    ) -> None:
        self.c = compiled
        self.st = storage
        self.dispatcher = dispatcher
        self.notifier = notifier
        self.atom_notifier = atom_notifier
        self.suspend = suspend
        """Set by ``Engine.suspend()``: running atoms finish, nothing new starts."""
        self.wake = wake
        """Set to cut short a wait for a retry delay (a suspend)."""
        self.cap = cap
        """At most this many calls in flight (a fenced run: the dispatcher's capacity)."""
        self.slots = slots
        """A fenced run with async atoms: their own cap (``max_async``) beside ``cap`` (see
        :mod:`~flowkit.engines.slots`); None otherwise."""
        self.waiting = [0] * len(compiled.atoms)
        """Per node: predecessors not done yet; the node is ready at zero."""
        self.ready: deque[int] = deque()
        self.running = 0
        self.failed: dict[int, Failure] = {}
        """Failures not handled yet (handled once the running atoms have drained)."""
        self.ignored: set[int] = set()
        """Nodes a false decider turned off (they end IGNORE)."""
        self.decided: set[int] = set()
        """``id()`` of the decider links already asked in this attempt."""
        self.timers = DelayTimers()
        self.revert_failed = False
        """A revert of this run failed (the flow ends FAILURE, not REVERTED)."""
        self.wave: RevertWave | None = None
        """The revert wave in progress; its completions go to it."""
        self.cancel = cancel
        """The engine's cancel request (``engine.cancel``): it also sets ``suspend``, so the hot loop
        checks nothing more; what holds something open (async atoms, waits) registers a callback."""
        self.waits = waits
        """The engine's durable waits (:mod:`~flowkit.engines.waiting`); None when the flow has none."""
        if waits is not None:
            waits.reset()
            waits.bind(self)
        self.stop_as = FlowState.SUSPENDED
        """The state a run stopped by ``suspend`` ends in (FAILURE when the caller threw an error in)."""
        self.told = progress_nodes(compiled)
        """Tasks the engine tells 0.0/1.0 progress (see :mod:`~flowkit.engines.task_progress`)."""
        self.told_late = False
        """A SUCCESS saved with the write just made (pairing) was told only now: see :meth:`start`."""
        self.quiet = False
        """Set by ``Engine.run()``, which drops every step: the per-atom steps of the forward loop and
        of revert waves are then not yielded (each costs a resume of every generator up the chain)."""
        self.report, self.report_details = self.progress_of_task, self.progress_with_details
        """Where the atoms' contexts send progress: bound once, shared by every context (two bound
        methods per atom were two thirds of the objects a run keeps per atom)."""
        self.contexts: list[AtomContext] = contexts_for(
            compiled.names, storage.atom_uuids, self.report, self.report_details
        )
        """Per node: its call context, shared by all its calls (a revert, a retry's next attempt): it
        holds nothing that changes within a run. All made at once, in C (a Python call per atom was
        a fifth of a serial no-op task's cost)."""

    # -- recording ----------------------------------------------------------------------------------

    def set_flow(self, state: FlowState) -> None:
        st = self.st
        old = st.set_flow_state(state)
        if self.notifier.active and old is not state and state is not FlowState.REVERTING:
            # REVERTING is saved (a crash mid-revert resumes the revert) but, as in TaskFlow, flow
            # listeners see RUNNING -> REVERTED; the atoms' own REVERTING notices tell the revert.
            self.notifier.notify(
                state, {"flow_name": st.flow_name, "flow_uuid": st.flow_uuid, "old_state": old}
            )

    def keep_start(self) -> None:
        """Let the recorder save the flow's RUNNING, about to be set, with the first atom write (one
        transaction fewer per run): only in ``Engine.run()`` of the serial loop with no flow listener,
        where nothing sees the flow between the two and the first task's RUNNING is written before
        its ``execute`` starts (see ``Recorder.pair_start``)."""
        recorder = self.st.recorder
        if (
            self.quiet
            and recorder is not None
            and recorder.pairs
            and self.dispatcher.inline
            and self.slots is None
            and not self.notifier.active
        ):
            recorder.pair_start = True

    def set_atom(self, i: int, state: AtomState, result: Any = None) -> None:
        old = self.st.set_atom_state(i, state)
        if self.atom_notifier.active:
            self.announce_atom(i, state, old, result)

    def told_success(self, i: int, old: AtomState) -> None:
        """Tell atom ``i``'s listeners, and its task's progress listeners (1.0), that it succeeded."""
        if self.atom_notifier.active:
            self.announce_atom(i, SUCCESS, old, self.st.results[i])
        if self.told and i in self.told:
            tell(self.c.atoms[i], 1.0)  # type: ignore[arg-type]

    def _told_saved(self, i: int) -> None:
        """The recorder saved atom ``i``'s SUCCESS, kept for pairing: tell it now (see :meth:`start`)."""
        self.told_late = True
        self.told_success(i, RUNNING)

    def announce_atom(self, i: int, state: AtomState, old: AtomState, result: Any = None) -> None:
        """Tell the atom listeners that atom ``i`` moved from ``old`` to ``state`` (already saved)."""
        if self.atom_notifier.active:
            c = self.c
            details = {
                "atom_name": c.names[i],
                "atom_uuid": self.st.atom_uuids[i],
                "kind": _KIND_NAMES[c.kinds[i]],
                "old_state": old,
                "result": result,
            }
            if c.kinds[i] != RETRY:
                details["task_name"] = c.names[i]
            self.atom_notifier.notify(state, details)

    def reset_atom(self, i: int) -> None:
        """Forget atom ``i``'s outcome so it runs again; listeners see it go back to PENDING."""
        if self.st.states[i] is not S.PENDING and self.c.kinds[i] != JUNCTION:
            self.set_atom(i, S.PENDING)
        self.st.reset_atom(i)

    def progress_of_task(self, name: str, progress: float) -> None:
        self.st.set_task_progress(name, progress, {})
        if self.atom_notifier.active:
            self.atom_notifier.notify(
                EVENT_UPDATE_PROGRESS, {"atom_name": name, "task_name": name, "progress": progress}
            )

    def progress_with_details(self, name: str, progress: float, details: dict[str, Any]) -> None:
        """A task's notifier was sent progress with details: kept in storage with them."""
        self.progress_of_task(name, progress)
        self.st.set_task_progress(name, progress, details)

    def progress_of_node(self, i: int, progress: float) -> None:
        self.progress_of_task(self.c.names[i], progress)

    def context(self, i: int) -> AtomContext:
        return self.contexts[i]

    def failures_so_far(self) -> dict[str, Failure]:
        names = self.c.names
        return {names[i]: f for i, f in enumerate(self.st.failures) if f is not None}

    def all_failures(self) -> list[Failure]:
        """What a run that ended FAILURE raises: the failed reverts first (why the flow could not be
        reverted, as TaskFlow raises them), then the failures that caused the revert."""
        st = self.st
        out = [f for f in st.revert_failures if f is not None]
        out.extend(st.flow_failures.values())
        return out

    # -- the whole run --------------------------------------------------------------------------------

    def reset_all(self) -> None:
        """A REVERTED flow runs again from the start: forget every outcome."""
        st = self.st
        for i in self.c.order:
            self.reset_atom(i)
        for h in st.histories.values():
            h.__init__()  # type: ignore[misc]
        st.flow_failures = {}

    def forward(self) -> Generator[Step, None, None]:
        """Run the flow forward to SUCCESS, a suspend, or the revert its failures lead to.

        Yields TaskFlow's engine steps: SCHEDULING (the atoms ready now are started; inline
        calls run here), WAITING (for a call to finish), ANALYZING (its outcome was recorded).
        """
        if not (yield from finish_interrupted_reverts(self)):
            yield from revert_all(self, self.failures_so_far(), retry_failed=False)
            return
        self._seed()
        dispatcher, ready, suspend, cap = self.dispatcher, self.ready, self.suspend, self.cap
        if self.slots is not None:  # each call kind is capped by the slots; this caps their sum
            cap += self.slots.cap
        timers, waits = self.timers, self.waits
        inline, delayed = dispatcher.inline, timers.heap
        recorder = self.st.recorder
        grouped = not inline and recorder is not None and recorder.groups  # see engines.together
        # serial: a task's SUCCESS is saved with the next task's RUNNING (Recorder.flush_deferred); its
        # listeners are told once it is saved
        pairs = inline and recorder is not None and recorder.pairs and self.slots is None
        if pairs:
            told = self.atom_notifier.active or self.told
            recorder.after_deferred = self._told_saved if told else None  # type: ignore[union-attr]
        pending = waits.pending if waits is not None else _NO_WAITS
        prioritized = self.c.prioritized
        loud = not self.quiet
        # Ready atoms are started in rounds (what a round releases waits for the next) when someone sees
        # each round's steps, or each round is ordered by priority. Otherwise a round goes on while atoms
        # are ready, in the same order (the queue is first in, first out), without the outer loop's checks
        # per atom (a linear flow releases one atom per round).
        rounds = loud or prioritized
        if not ready:  # nothing to start (an empty or finished flow): still one round, as TaskFlow
            yield SCHEDULING
            yield WAITING
            yield ANALYZING
        # The hot loop: start what is ready now (bind, record RUNNING, submit), take one completion
        # (record, notify, release successors). Everything else waits for a drain.
        while True:
            if ready and self.running < cap and not self.failed and not suspend.on:
                if loud:
                    yield SCHEDULING
                n = len(ready)  # what these release is started in the next round
                if prioritized and n > 1:
                    self._by_priority()
                # The round's first start was checked just above; only a suspend can have come since
                # (asked by whoever took the SCHEDULING step).
                while not loud or not suspend.on:
                    n -= 1
                    self.start(ready.popleft())
                    if inline:  # finish before starting the next: a failure stops what follows
                        item = dispatcher.wait(0)
                        if item is not None:
                            done, action, ok, value = item  # not finish(*item): no bound method made
                            if pairs and ok:
                                recorder.pair_next = True  # type: ignore[union-attr]
                            self.finish(done, action, ok, value)
                    if not ((n or not rounds) and ready and self.running < cap and not self.failed
                            and not suspend.on):  # fmt: skip
                        break
                if pairs and (loud or ready or self.running or self.failed or delayed or pending):
                    # the round is over, and what comes next may act on the last SUCCESS before a
                    # write: saved now. (Else the flow ends, or stops, with a write that takes it.)
                    recorder.flush_deferred()  # type: ignore[union-attr]
                if loud:
                    yield WAITING
            elif self.running:
                if loud:
                    yield WAITING
            elif (yield from self._drained()):
                return
            else:
                continue
            if self.running:
                item = dispatcher.wait(self._timeout() if delayed or pending else None)
                if item is not None:
                    more = dispatcher.poll() if grouped else None
                    if more is not None:  # several finished together: saved in one transaction
                        finish_together(self, [item, more])
                    while item is not None and more is None:  # every call finished by now, in one step
                        self.finish(*item)
                        item = dispatcher.poll() if self.running else None
                if delayed:
                    timers.fire(ready)
                if pending:
                    waits.fire(self)  # type: ignore[union-attr]
            if loud:
                yield ANALYZING

    def _by_priority(self) -> None:
        """Order the ready atoms by priority, highest first (ties keep their order)."""
        atoms = self.c.atoms
        ordered = sorted(self.ready, key=lambda i: -atoms[i].priority)
        self.ready.clear()
        self.ready.extend(ordered)

    def _timeout(self) -> float | None:
        """How long the dispatcher may block: until the next retry delay or wait is due."""
        waits = self.waits.timeout() if self.waits is not None and self.waits.pending else None
        timers = self.timers.timeout()
        if waits is None or timers is None:
            return timers if waits is None else waits
        return min(waits, timers)

    def _seed(self) -> None:
        """Count each unfinished atom's unfinished predecessors; queue those with none."""
        states, preds, waiting, ready, st = self.st.states, self.c.preds, self.waiting, self.ready, self.st
        if states.count(PENDING) == len(states):
            # A fresh run (the usual one): every atom waits for all its predecessors. Counted and queued
            # in C, in the same order as the loop below would.
            waiting[:] = map(len, preds)
            ready.extend(compress(self.c.order, map(not_, map(waiting.__getitem__, self.c.order))))
            return
        failures = st.failures
        for i in self.c.order:
            s = states[i]
            if s in ATOM_DONE:
                continue
            failure = failures[i] if s is FAILURE else None
            if failure is not None and i not in st.never_started:
                # A failure saved but not handled yet (the run stopped in between): handle it now,
                # as TaskFlow does; running it again would skip the revert of what it did.
                self.failed[i] = failure
                continue
            if s in _LEFTOVERS:
                st.reset_atom(i)  # a previous run's leftovers: this run starts the atom afresh
            n_waiting = 0
            for p in preds[i]:
                if states[p] not in ATOM_DONE:
                    n_waiting += 1
            waiting[i] = n_waiting
            if n_waiting == 0:
                ready.append(i)

    def _drained(self) -> Generator[Step, None, bool]:
        """Nothing runs: handle the failures, stop for a suspend, wait for a retry delay or end.

        Returns True when the forward pass is over.
        """
        if self.slots is not None:
            self.slots.release_all(self)
        if self.cancel is not None and self.cancel.is_set():
            return (yield from revert_cancelled(self))
        if self.failed:
            return (yield from handle_failures(self))
        if self.suspend.is_set():
            self.set_flow(self.stop_as)
            return True
        if self.waits is not None and self.waits.pending:
            return self.waits.idle(self)
        if self.timers:
            self.wake.wait(self.timers.timeout())
            self.timers.fire(self.ready)
            return False
        if self.ready:
            return False
        self.set_flow(FlowState.SUCCESS)
        return True

    # -- one atom -------------------------------------------------------------------------------------

    def start(self, i: int) -> None:
        """Bind atom ``i``'s arguments, record RUNNING and hand it to the dispatcher."""
        c, st = self.c, self.st
        kind = c.kinds[i]
        if kind == JUNCTION:
            st.states[i] = S.SUCCESS
            self.release(i)
            return
        if i in c.deciders and i not in self.ignored:
            if st.recorder is not None:  # a decider reads the results before it: saved first
                st.recorder.flush_deferred()
            try:
                deciders.decide(self, i, c.deciders[i])
            except FlowkitError as exc:
                self.fail_unstarted(i, exc)
                return
        if i in self.ignored:
            self.set_atom(i, S.IGNORE)
            self.release(i)
            return
        atom = c.atoms[i]
        bindings = c.bindings[i]
        if not bindings:
            kwargs = {}
        elif (one := c.single_arg[i]) is not None and st.states[one.provider] is SUCCESS:
            kwargs = {one.arg: st.results[one.provider]}  # bind_args' first case, inline (a chain's atoms)
        else:
            try:
                kwargs = st.bind_args(bindings)
            except FlowkitError as exc:
                self.fail_unstarted(i, _named(exc, c.names[i]))
                return
        inject = atom.inject_kwargs
        if inject:
            kwargs.update(inject)
        if self.waits is not None and i in self.waits.nodes:
            self.waits.begin(self, i, kwargs)  # a durable wait holds no thread: the engine keeps it
            return
        if self.slots is not None and kind != RETRY and not self.slots.admit(self, i):
            return  # held until a call of its kind ends: nothing recorded, nothing queued
        old = st.set_atom_state(i, RUNNING)  # set_atom, inline (two calls per atom otherwise)
        if self.told_late:  # the SUCCESS saved with this RUNNING was told just now
            self.told_late = False
            if self.suspend.on:  # and its listener asked to stop: saved RUNNING, this atom is not
                # called (it runs on the next run, as one a stopped run left RUNNING does); a cancel's
                # revert in this run knows there is nothing of it to undo
                st.never_started.add(i)
                return
        if self.atom_notifier.active:
            self.announce_atom(i, RUNNING, old)
        self.running += 1
        if self.told and i in self.told:
            tell(atom, 0.0)  # type: ignore[arg-type]
        if kind == RETRY:  # a controller's execute is ours (it picks the attempt's values): inline
            try:
                result = atom.execute(history=st.histories[i], **kwargs)
            except Exception:
                self.finish(i, EXECUTE, False, Failure())
            else:
                self.finish(i, EXECUTE, True, result)
            return
        self.dispatcher.submit(i, atom, EXECUTE, kwargs, self.contexts[i])

    def fail_unstarted(self, i: int, exc: FlowkitError) -> None:
        """Atom ``i`` fails before its execute is called (nothing to revert later).

        A pending atom goes straight to FAILURE: with no RUNNING saved, a resumed revert
        knows from the database too that there is nothing to undo.
        """
        if self.st.states[i] is not S.PENDING:
            self.set_atom(i, S.RUNNING)
        self.running += 1
        self.finish(i, NOT_STARTED, False, Failure.from_exception(exc))

    def finish(self, i: int, action: str, ok: bool, value: Any) -> None:
        """One completion of one call: record it; a success releases the successors."""
        self.running -= 1
        if action == REVERT:
            self.wave.reverted(i, ok, value)  # type: ignore[union-attr]
            return
        if self.slots is not None:
            self.slots.freed(self, i)
        st = self.st
        if action == NOT_STARTED:
            st.never_started.add(i)
            ok = False
        c = self.c
        if ok and c.keyed[i]:
            missing = self._missing_key(i, value)
            if missing is not None:
                ok, value = False, missing
        if ok:
            st.results[i] = value
            if c.kinds[i] == RETRY:
                st.histories[i]._start_attempt(value)
            old = st.set_atom_state(i, SUCCESS)  # set_atom, inline
            if self.atom_notifier.active or self.told:
                recorder = st.recorder
                if recorder is None or not recorder.keeps(i):  # (else told once saved: _told_saved)
                    self.told_success(i, old)
            waiting = self.waiting  # release(i), inline
            for s in c.succs[i]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    self.ready.append(s)
        else:
            value.atom_name = c.names[i]
            st.failures[i] = value
            if c.kinds[i] == RETRY:
                st.histories[i].failure = value
            self.set_atom(i, S.FAILURE, value)
            self.failed[i] = value

    def _missing_key(self, i: int, value: Any) -> Failure | None:
        """A result must hold every key/index the atom promised to provide: the failure naming one missing."""
        atom = self.c.atoms[i]
        try:
            for symbol, key in atom.save_as.items():
                extract(value, key, atom.name, symbol)
        except FlowkitError:
            return Failure()
        return None

    def release(self, i: int) -> None:
        """Atom ``i`` is done: a successor with no predecessor left to wait for is ready."""
        waiting, ready = self.waiting, self.ready
        for s in self.c.succs[i]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)


def _named(exc: FlowkitError, atom_name: str) -> FlowkitError:
    """``exc``, naming the atom it happened to when it does not already."""
    if isinstance(exc, NotFound) and repr(atom_name) not in str(exc):
        named = NotFound(f"atom {atom_name!r}: {exc}")
        named.__cause__ = exc
        return named
    return exc
