"""The engine: runs a compiled flow forward; its layers revert it and let retry controllers steer.

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

The layers, each a module: :mod:`~flowkit.engines.run_state` (per-run state and
recording), :mod:`~flowkit.engines.revert` (revert waves), :mod:`~flowkit.engines.retrying`
(failures and retry decisions), :mod:`~flowkit.engines.deciders`, and this module's
:class:`Engine` (life cycle and the forward hot path).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from flowkit.atom import extract
from flowkit.compiler import JUNCTION, RETRY, CompiledFlow, DeciderLink, compile_flow
from flowkit.engines.deciders import decider_reach
from flowkit.engines.dispatch import EXECUTE, NOT_STARTED, REVERT, Dispatcher
from flowkit.engines.retrying import RetryHandling
from flowkit.exceptions import ClaimLost, FlowkitError, NotFound, NotSerializableError, WrappedFailure
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.notifier import Notifier
from flowkit.retry import Retry
from flowkit.states import ATOM_DONE, AtomState, FlowState
from flowkit.storage import Recorder, Storage

S = AtomState


class Engine(RetryHandling):
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
        # A fenced run hands the dispatcher no more calls than it runs at once (see Dispatcher.capacity)
        self._cap = self._dispatcher.capacity if getattr(recorder, "fence", None) is not None else sys.maxsize
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
        self._new_run(self.compile(), self.storage)
        self._dispatcher.start()
        fenced = False
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
        except ClaimLost:
            # A newer claim owns the flow: start nothing more (calls queued for a busy worker are
            # dropped) and write nothing more (every write would be refused).
            fenced = True
            self._dispatcher.discard()
            raise
        finally:
            self._dispatcher.stop()
            self._suspend.clear()
            interrupted = st.flow_state in (FlowState.RUNNING, FlowState.REVERTING, FlowState.RESUMING)
            if interrupted and not fenced:
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

    # -- forward ------------------------------------------------------------------------------------

    def _reset_all(self) -> None:
        st = self._st
        for i in self._c.order:
            st.reset_atom(i)
        for h in st.histories.values():
            h.__init__()  # type: ignore[misc]
        st.flow_failures = {}

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
        cap = self._cap
        while True:
            while ready and self._running < cap and not self._failed and not suspend.is_set():
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
        """Atom ``i`` fails before its execute is called (nothing to revert later).

        A pending atom goes straight to FAILURE: with no RUNNING saved, a resumed revert
        knows from the database too that there is nothing to undo.
        """
        if self._st.states[i] is not S.PENDING:
            self._set_atom(i, S.RUNNING)
        self._running += 1
        self._finish(i, NOT_STARTED, False, Failure.from_exception(exc))

    def _finish(self, i: int, action: str, ok: bool, value: Any) -> None:
        self._running -= 1
        if action == REVERT:
            self._reverted(i, ok, value)
            return
        if action == NOT_STARTED:
            self._st.never_started.add(i)
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
                self._ignored.update(decider_reach(self._c, link))


def _named(exc: FlowkitError, atom_name: str) -> FlowkitError:
    """``exc``, naming the atom it happened to when it does not already."""
    if isinstance(exc, NotFound) and repr(atom_name) not in str(exc):
        named = NotFound(f"atom {atom_name!r}: {exc}")
        named.__cause__ = exc
        return named
    return exc
