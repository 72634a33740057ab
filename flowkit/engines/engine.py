"""The engine: runs a compiled flow, reverts it on failure, and lets retry controllers steer.

One scheduler thread owns all state. Its hot path is short on purpose:
``_start`` binds arguments and records RUNNING, the dispatcher runs the call,
``_finish`` records the result and releases successors by decrementing a
counter per successor (no graph walks, no locks). Work done per atom does not
grow with the flow.

Failures are handled when the atoms that are still running have finished
(a "drain"): they are grouped by their innermost retry controller, deepest
first. RETRY reverts the controller's scope and runs it again; REVERT reverts
the scope and passes the failure outward; REVERT_ALL, or a failure that no
controller absorbs, reverts every atom that ran. Reverts run in reverse
dependency order, in parallel where the dispatcher allows, each atom once.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from flowkit.atom import extract
from flowkit.compiler import JUNCTION, RETRY, CompiledFlow, DeciderLink, compile_flow
from flowkit.context import AtomContext
from flowkit.engines.dispatch import EXECUTE, NOT_STARTED, REVERT, Dispatcher
from flowkit.exceptions import FlowkitError, NotFound, NotSerializableError, WrappedFailure
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.notifier import EVENT_UPDATE_PROGRESS, Notifier
from flowkit.patterns.graph_flow import Depth
from flowkit.retry import RETRY as DO_RETRY
from flowkit.retry import REVERT as DO_REVERT
from flowkit.retry import REVERT_ALL, Decision, History, Retry
from flowkit.states import ATOM_DONE, AtomState, FlowState
from flowkit.storage import Recorder, Storage

S = AtomState
_REVERTIBLE = frozenset({S.SUCCESS, S.FAILURE, S.REVERTING, S.RETRYING, S.RUNNING})
_KIND_NAMES = ("task", "retry", "junction")


class Engine:
    """Runs one flow. Build it with :func:`flowkit.engines.load`."""

    def __init__(
        self,
        flow: Flow,
        store: Mapping[str, Any] | None = None,
        dispatcher: Dispatcher | None = None,
        recorder: Recorder | None = None,
        flow_uuid: str | None = None,
        check_pickle: bool = False,
    ) -> None:
        self.flow = flow
        self.notifier = Notifier()
        """Flow state changes: ``callback(state, {"flow_name", "flow_uuid", "old_state"})``."""
        self.atom_notifier = Notifier()
        """Atom state changes and progress: details name the atom (``atom_name``, ``task_name``)."""
        self._store = dict(store or {})
        self._dispatcher = dispatcher or Dispatcher()
        self._recorder = recorder
        self._flow_uuid = flow_uuid
        self._check_pickle = check_pickle
        self._compiled: CompiledFlow | None = None
        self._storage: Storage | None = None
        self._validated = False
        self._suspend = threading.Event()
        self._wake = threading.Event()

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def compilation(self) -> CompiledFlow:
        return self.compile()

    @property
    def storage(self) -> Storage:
        self.prepare()
        assert self._storage is not None
        return self._storage

    def compile(self) -> CompiledFlow:
        """Compile the flow into one DAG (idempotent); structural errors are raised here."""
        if self._compiled is None:
            self._compiled = compile_flow(self.flow)
        return self._compiled

    def prepare(self) -> None:
        """Create the flow's storage (idempotent)."""
        if self._storage is None:
            compiled = self.compile()
            self._storage = Storage(compiled, self._store, self._recorder, self._flow_uuid)
            if self._recorder is not None:
                self._recorder.restore(self._storage)

    def validate(self) -> None:
        """Check that every requirement can be met and, for processes, that every task pickles."""
        self.prepare()
        storage = self.storage
        self.compile().check_store(storage.store)
        if self._check_pickle and not self._validated:
            import pickle

            for atom in self.compile().atoms:
                if atom is None or isinstance(atom, Retry):
                    continue
                try:
                    pickle.dumps(atom)
                except Exception as exc:
                    raise NotSerializableError(
                        atom.name, "the task", f"{exc} (the process executor pickles every task)"
                    ) from exc
        self._validated = True

    def suspend(self) -> None:
        """Stop at the next safe point: running atoms finish, nothing new starts; ``run()`` resumes."""
        self._suspend.set()
        self._wake.set()

    def run(self) -> None:
        """Run the flow to its end (or to a suspend).

        Raises the task's own exception when one atom's failure was reverted,
        :class:`~flowkit.exceptions.WrappedFailure` when several failed or a revert failed too.
        """
        for _ in self.run_iter():
            pass

    def run_iter(self) -> Iterator[FlowState]:
        """Run step by step, yielding the flow's state after each atom finishes."""
        self.validate()
        st = self.storage
        self._wake.clear()
        self._setup_run()
        self._dispatcher.start()
        try:
            reverting = bool(st.flow_failures) and st.flow_state not in (FlowState.REVERTED,)
            if st.flow_state is FlowState.REVERTED:
                self._reset_all()
                reverting = False
            if st.flow_state is not FlowState.PENDING:
                self._set_flow(FlowState.RESUMING)
            if reverting:
                yield from self._revert_all(dict(st.flow_failures), retry_failed=True)
            else:
                self._set_flow(FlowState.RUNNING)
                yield FlowState.RUNNING
                yield from self._forward()
        finally:
            self._dispatcher.stop()
            self._suspend.clear()
            if st.flow_state in (FlowState.RUNNING, FlowState.REVERTING, FlowState.RESUMING):
                self._interrupted()
        final = st.flow_state
        yield final
        if final is FlowState.REVERTED:
            Failure.reraise_if_any(list(st.flow_failures.values()))
        elif final is FlowState.FAILURE:
            raise WrappedFailure(self._all_failures())

    def _interrupted(self) -> None:
        """The run stopped early (an exception, a storage error, an abandoned run_iter): SUSPENDED.

        Atoms still RUNNING stay so and run again on the next ``run()`` (at-least-once).
        """
        try:
            self._set_flow(FlowState.SUSPENDED)
        except Exception:  # the recorder is what failed: the saved state is resumed as SUSPENDED anyway
            self.storage.flow_state = FlowState.SUSPENDED

    # -- state helpers ----------------------------------------------------------------------------

    def _set_flow(self, state: FlowState) -> None:
        st = self.storage
        old = st.set_flow_state(state)
        if self.notifier.active and old is not state:
            self.notifier.notify(
                state, {"flow_name": st.flow_name, "flow_uuid": st.flow_uuid, "old_state": old}
            )

    def _set_atom(self, i: int, state: AtomState, result: Any = None) -> None:
        old = self._st.set_atom_state(i, state)
        if self.atom_notifier.active:
            c = self._c
            details = {
                "atom_name": c.names[i],
                "atom_uuid": self._st.atom_uuids[i],
                "kind": _KIND_NAMES[c.kinds[i]],
                "old_state": old,
                "result": result,
            }
            if c.kinds[i] != RETRY:
                details["task_name"] = c.names[i]
            self.atom_notifier.notify(state, details)

    def _progress_of_task(self, name: str, progress: float) -> None:
        if self.atom_notifier.active:
            self.atom_notifier.notify(
                EVENT_UPDATE_PROGRESS, {"atom_name": name, "task_name": name, "progress": progress}
            )

    def _context(self, i: int) -> AtomContext:
        return AtomContext(self._c.names[i], self._st.atom_uuids[i], self._progress_of_task)

    def _progress_of_node(self, i: int, progress: float) -> None:
        self._progress_of_task(self._c.names[i], progress)

    def _failures_so_far(self) -> dict[str, Failure]:
        st, names = self._st, self._c.names
        return {names[i]: f for i, f in enumerate(st.failures) if f is not None}

    def _all_failures(self) -> list[Failure]:
        st = self.storage
        out = list(st.flow_failures.values())
        out.extend(f for f in st.revert_failures if f is not None)
        return out

    # -- forward ------------------------------------------------------------------------------------

    def _setup_run(self) -> None:
        self._c = self.compile()
        self._st = self.storage
        c = self._c
        n = len(c.atoms)
        self._waiting = [0] * n
        self._ready: deque[int] = deque()
        self._running = 0
        self._failed: dict[int, Failure] = {}
        self._ignored: set[int] = set()
        self._decided: set[int] = set()
        self._timers: list[tuple[float, int]] = []
        self._revert_failed = False
        self._never_started: set[int] = set()
        """Atoms whose execute failed before it was called (nothing to revert)."""

    def _reset_all(self) -> None:
        st = self._st
        for i in self._c.order:
            st.reset_atom(i)
        for h in st.histories.values():
            h.__init__()  # type: ignore[misc]
        st.flow_failures = {}

    def _finish_interrupted_reverts(self) -> Generator[FlowState, None, bool]:
        """After a crash mid-revert inside a running flow: finish those reverts first.

        A retry controller saved as RETRYING was reverting its scope for another attempt; an
        atom saved as REVERTING was being reverted. Returns False if a revert failed (the flow
        then reverts everything that ran).
        """
        c, st = self._c, self._st
        states = st.states
        for r in sorted(st.histories):  # outer controllers first: their scope holds the inner ones
            if states[r] is not S.RETRYING:
                continue
            history = st.histories[r]
            failures = dict(history[-1][1]) if len(history) else {}
            if not (yield from self._revert_wave(range(r + 1, c.scope_end[r]), failures, retry_failed=True)):
                return False
            for x in range(r + 1, c.scope_end[r]):
                if c.kinds[x] == JUNCTION:
                    states[x] = S.PENDING
                    continue
                st.reset_atom(x)
                if c.kinds[x] == RETRY:
                    st.histories[x] = History()
        stranded = [x for x in range(len(states)) if states[x] is S.REVERTING]
        if stranded:
            for x in stranded:
                if not (yield from self._revert_wave(range(x, x + 1), {}, retry_failed=True)):
                    return False
        return True

    def _forward(self) -> Generator[FlowState, None, None]:
        c, st = self._c, self._st
        states, preds, waiting, ready = st.states, c.preds, self._waiting, self._ready
        if not (yield from self._finish_interrupted_reverts()):
            yield from self._revert_all(self._failures_so_far(), retry_failed=False)
            return
        for i in c.order:
            s = states[i]
            if s in ATOM_DONE:
                continue
            if s in (S.FAILURE, S.REVERTED, S.REVERT_FAILURE, S.REVERTING):
                st.reset_atom(i)  # a previous run's leftovers: this run starts the atom afresh
            n_waiting = 0
            for p in preds[i]:
                if states[p] not in ATOM_DONE:
                    n_waiting += 1
            waiting[i] = n_waiting
            if n_waiting == 0:
                ready.append(i)
        dispatcher = self._dispatcher
        inline = dispatcher.inline
        suspend = self._suspend
        while True:
            while ready and not self._failed and not suspend.is_set():
                self._start(ready.popleft())
                if inline:  # finish before starting the next: a failure stops what follows
                    item = dispatcher.wait(0)
                    if item is not None:
                        self._finish(*item)
                        yield FlowState.RUNNING
            if self._running:
                item = dispatcher.wait(self._timer_timeout())
                if item is not None:
                    self._finish(*item)
                    yield FlowState.RUNNING
                self._fire_timers()
                continue
            if self._failed:
                over = yield from self._handle_failures()
                if over:
                    return
                continue
            if suspend.is_set():
                self._set_flow(FlowState.SUSPENDED)
                return
            if self._timers:
                self._wake.wait(self._timer_timeout())
                self._fire_timers()
                continue
            if ready:
                continue
            break
        self._set_flow(FlowState.SUCCESS)

    def _start(self, i: int) -> None:
        c, st = self._c, self._st
        kind = c.kinds[i]
        if kind == JUNCTION:
            st.states[i] = S.SUCCESS
            self._release(i)
            return
        if i in c.deciders and i not in self._ignored:
            try:
                self._decide(i, c.deciders[i])
            except FlowkitError as exc:
                self._fail_unstarted(i, exc)
                return
        if i in self._ignored:
            self._set_atom(i, S.IGNORE)
            self._release(i)
            return
        atom = c.atoms[i]
        try:
            kwargs = st.bind_args(c.bindings[i])
        except FlowkitError as exc:
            self._fail_unstarted(i, _named(exc, c.names[i]))
            return
        inject = atom.inject_kwargs  # type: ignore[union-attr]
        if inject:
            kwargs.update(inject)
        self._set_atom(i, S.RUNNING)
        self._running += 1
        if kind == RETRY:
            history = st.histories[i]
            try:
                result = atom.execute(history, **kwargs)  # type: ignore[union-attr]
            except Exception:
                self._finish(i, EXECUTE, False, Failure())
            else:
                self._finish(i, EXECUTE, True, result)
            return
        self._dispatcher.submit(i, atom, EXECUTE, kwargs, self._context(i))  # type: ignore[arg-type]

    def _fail_unstarted(self, i: int, exc: FlowkitError) -> None:
        """Atom ``i`` fails before its execute is called (nothing to revert later)."""
        self._set_atom(i, S.RUNNING)
        self._running += 1
        self._finish(i, NOT_STARTED, False, Failure.from_exception(exc))

    def _finish(self, i: int, action: str, ok: bool, value: Any) -> None:
        self._running -= 1
        if action == REVERT:
            self._reverted(i, ok, value)
            return
        if action == NOT_STARTED:
            self._never_started.add(i)
            ok = False
        st = self._st
        if ok and self._c.keyed[i]:
            value, ok = self._check_result(i, value)
        if ok:
            st.results[i] = value
            if self._c.kinds[i] == RETRY:
                st.histories[i]._start_attempt(value)
            self._set_atom(i, S.SUCCESS, value)
            self._release(i)
        else:
            value.atom_name = self._c.names[i]
            st.failures[i] = value
            if self._c.kinds[i] == RETRY:
                st.histories[i].failure = value
            self._set_atom(i, S.FAILURE, value)
            self._failed[i] = value

    def _check_result(self, i: int, value: Any) -> tuple[Any, bool]:
        """A result must hold every key/index the atom promised to provide; say which is missing."""
        atom = self._c.atoms[i]
        try:
            for symbol, key in atom.save_as.items():  # type: ignore[union-attr]
                extract(value, key, atom.name, symbol)  # type: ignore[union-attr]
        except FlowkitError:
            return Failure(), False
        return value, True

    def _release(self, i: int) -> None:
        waiting = self._waiting
        for s in self._c.succs[i]:
            waiting[s] -= 1
            if waiting[s] == 0:
                self._ready.append(s)

    # -- deciders -----------------------------------------------------------------------------------

    def _decide(self, i: int, links: list[DeciderLink]) -> None:
        c, st = self._c, self._st
        for link in links:
            key = id(link)
            if key in self._decided:
                continue
            self._decided.add(key)
            history = {c.names[h]: st.results[h] for h in link.history if c.kinds[h] != JUNCTION}
            try:
                go = bool(link.decider(history=history))
            except Exception as exc:
                raise FlowkitError(
                    f"decider on link {link.label} raised {type(exc).__name__}: {exc}"
                ) from exc
            if not go:
                self._ignored.update(self._reach(link))

    def _reach(self, link: DeciderLink) -> set[int]:
        """The node ids a false decider ignores, by its depth."""
        c = self._c
        out = set(link.target)
        if link.depth is Depth.ATOM:
            return out
        if link.depth is Depth.NEIGHBORS:
            frontier = list(out)
            while frontier:  # step through junctions: they are not atoms
                x = frontier.pop()
                for s in c.succs[x]:
                    if s not in out:
                        out.add(s)
                        if c.kinds[s] == JUNCTION:
                            frontier.append(s)
            return out
        limit = link.scope if link.depth is Depth.FLOW else None
        stack = list(out)
        while stack:
            x = stack.pop()
            for s in c.succs[x]:
                if s not in out and (limit is None or s in limit):
                    out.add(s)
                    stack.append(s)
        return out

    # -- timers (delays between retry attempts) ------------------------------------------------------

    def _timer_timeout(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _fire_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            self._ready.append(heapq.heappop(timers)[1])

    # -- failures -----------------------------------------------------------------------------------

    def _handle_failures(self) -> Generator[FlowState, None, bool]:
        """Act on the failures of a drained run; return True when the flow is over."""
        c = self._c
        failed, self._failed = self._failed, {}
        everything = {c.names[i]: f for i, f in failed.items()}
        groups: dict[int, dict[str, Failure]] = {}
        for i, f in failed.items():
            groups.setdefault(c.retry_of[i], {})[c.names[i]] = f
        revert_all = False
        while groups:
            r = max(groups)
            failures = groups.pop(r)
            if r < 0 or revert_all:
                revert_all = True
                continue
            decision = self._ask_retry(r, failures, everything)
            if decision is DO_RETRY:
                self._set_atom(r, S.RETRYING)  # saved first: a crash mid-revert resumes the retry
                ok = yield from self._revert_wave(range(r + 1, c.scope_end[r]), failures)
                if not ok:
                    revert_all = True
                    continue
                self._restart_scope(r)
            elif decision is DO_REVERT and c.retry_of[r] < 0:
                revert_all = True  # nothing outside absorbs it: revert everything, flow REVERTING
            elif decision is DO_REVERT:
                ok = yield from self._revert_wave(range(r, c.scope_end[r]), failures)
                if not ok:
                    revert_all = True
                    continue
                groups.setdefault(c.retry_of[r], {}).update(failures)
            else:
                revert_all = True
        if not revert_all:
            return False
        self._timers.clear()
        yield from self._revert_all(everything, retry_failed=False)
        return True

    def _ask_retry(self, r: int, failures: dict[str, Failure], everything: dict[str, Failure]) -> Decision:
        c, st = self._c, self._st
        history = st.histories[r]
        history._record_failures(failures)
        if st.recorder is not None:
            st.recorder.retry_changed(st, r)
        atom = c.atoms[r]
        try:
            kwargs = st.bind_args(c.bindings[r])
            kwargs.update(atom.inject_kwargs)  # type: ignore[union-attr]
            decision = Decision(atom.on_failure(history, **kwargs))  # type: ignore[union-attr]
        except Exception:
            failure = Failure()
            failure.atom_name = c.names[r]
            everything[c.names[r]] = failure
            return REVERT_ALL
        return decision

    def _restart_scope(self, r: int) -> None:
        """Reset a retry controller's scope and schedule the controller (after its delay)."""
        c, st = self._c, self._st
        end = c.scope_end[r]
        for x in range(r + 1, end):
            if c.kinds[x] == JUNCTION:
                st.states[x] = S.PENDING
            else:
                st.reset_atom(x)
            if c.kinds[x] == RETRY:  # nested controllers start each outer attempt afresh
                st.histories[x] = History()
                if st.recorder is not None:
                    st.recorder.retry_changed(st, x)
            self._ignored.discard(x)
            self._never_started.discard(x)
        for x in range(r + 1, end):
            for link in c.deciders.get(x, ()):
                self._decided.discard(id(link))
        if st.states[r] is not S.RETRYING:
            self._set_atom(r, S.RETRYING)
        states, waiting = st.states, self._waiting
        affected = set(range(r, end))
        for x in range(r, end):
            affected.update(c.succs[x])
        for x in affected:
            if states[x] in ATOM_DONE and x != r:
                continue
            waiting[x] = sum(1 for p in c.preds[x] if states[p] not in ATOM_DONE)
        waiting[r] = 0
        # Atoms of the scope released before the failure must wait for the controller again.
        scope = range(r, end)
        kept = [x for x in self._ready if x not in scope and waiting[x] == 0]
        self._ready.clear()
        self._ready.extend(kept)
        self._timers[:] = [(due, x) for due, x in self._timers if x not in scope]
        heapq.heapify(self._timers)
        atom = c.atoms[r]
        delay = atom.delay_before(len(st.histories[r]) + 1)  # type: ignore[union-attr]
        if delay > 0:
            heapq.heappush(self._timers, (time.monotonic() + delay, r))
        else:
            self._ready.append(r)

    # -- revert -------------------------------------------------------------------------------------

    def _revert_all(
        self, failures: dict[str, Failure], retry_failed: bool
    ) -> Generator[FlowState, None, None]:
        st = self._st
        st.flow_failures = failures
        self._set_flow(FlowState.REVERTING)
        yield FlowState.REVERTING
        ok = yield from self._revert_wave(range(len(self._c.atoms)), failures, retry_failed, suspendable=True)
        if self._suspend.is_set() and not self._wave_done:
            self._set_flow(FlowState.SUSPENDED)
            return
        self._set_flow(FlowState.REVERTED if ok and not self._revert_failed else FlowState.FAILURE)

    def _revert_wave(
        self,
        nodes: range,
        failures: dict[str, Failure],
        retry_failed: bool = False,
        suspendable: bool = False,
    ) -> Generator[FlowState, None, bool]:
        """Revert every atom in ``nodes`` that ran, successors first; False if a revert failed."""
        c, st = self._c, self._st
        states = st.states
        touched = {x for x in nodes if states[x] is not S.PENDING}
        blocked = S.REVERT_FAILURE if not retry_failed else None
        left = {x: sum(1 for s in c.succs[x] if s in touched) for x in touched}
        order = sorted((x for x, n in left.items() if n == 0), key=lambda x: -st.finished_seq[x])
        rready = deque(order)
        self._rleft, self._rtouched, self._rready = left, touched, rready
        self._wave_done = False
        failed_before = self._revert_failed
        self._revert_failed = False
        self._flow_failures_now = failures
        while True:
            while rready and not (suspendable and self._suspend.is_set()):
                x = rready.popleft()
                state = states[x]
                if c.kinds[x] == JUNCTION or (state not in _REVERTIBLE and state is not S.REVERT_FAILURE):
                    self._revert_release(x)
                elif state is blocked:
                    self._revert_failed = True
                elif state is S.FAILURE and x in self._never_started:
                    self._set_atom(x, S.REVERTING)  # execute never ran: there is nothing to undo
                    self._set_atom(x, S.REVERTED)
                    self._revert_release(x)
                else:
                    self._start_revert(x)
            if not self._running:
                break
            item = self._dispatcher.wait(None)
            if item is not None:
                self._finish(*item)
                yield FlowState.REVERTING
        self._wave_done = not rready
        ok = not self._revert_failed
        self._revert_failed = self._revert_failed or failed_before
        return ok

    def _revert_release(self, x: int) -> None:
        left, touched, rready = self._rleft, self._rtouched, self._rready
        for p in self._c.preds[x]:
            if p in touched:
                left[p] -= 1
                if left[p] == 0:
                    rready.append(p)

    def _start_revert(self, x: int) -> None:
        c, st = self._c, self._st
        atom = c.atoms[x]
        prior = st.states[x]
        # revert gets what can still be found: it must cope with a partial picture
        kwargs: dict[str, Any] = {}
        if atom._revert_takes_kwargs:  # type: ignore[union-attr]
            kwargs.update(st.bind_args(c.bindings[x], partial=True))
            kwargs.update(atom.inject_kwargs)  # type: ignore[union-attr]
        kwargs.update(st.bind_args(c.revert_bindings[x], partial=True))
        kwargs.update(atom.revert_inject_kwargs)  # type: ignore[union-attr]
        wants = atom._revert_wants  # type: ignore[union-attr]
        if "result" in wants:
            kwargs["result"] = st.failures[x] if prior is S.FAILURE else st.results[x]
        if "flow_failures" in wants:
            kwargs["flow_failures"] = dict(self._flow_failures_now)
        self._set_atom(x, S.REVERTING)
        self._running += 1
        if c.kinds[x] == RETRY:
            kwargs.pop("result", None)
            try:
                out = atom.revert(st.histories[x], **kwargs)  # type: ignore[union-attr]
            except Exception:
                self._finish(x, REVERT, False, Failure())
            else:
                self._finish(x, REVERT, True, out)
            return
        self._dispatcher.submit(x, atom, REVERT, kwargs, self._context(x))  # type: ignore[arg-type]

    def _reverted(self, x: int, ok: bool, value: Any) -> None:
        st = self._st
        if ok:
            st.revert_results[x] = value
            self._set_atom(x, S.REVERTED, value)
            self._revert_release(x)
        else:
            value.atom_name = self._c.names[x]
            st.revert_failures[x] = value
            self._set_atom(x, S.REVERT_FAILURE, value)
            self._revert_failed = True


def _named(exc: FlowkitError, atom_name: str) -> FlowkitError:
    if isinstance(exc, NotFound):
        return NotFound(f"atom {atom_name!r}: {exc}")
    return exc
