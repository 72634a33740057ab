"""The engine: a flow's life cycle (compile, storage, validate, run, suspend) around its runs.

One scheduler thread owns all state. Each ``run()`` makes a :class:`~flowkit.engines.run.Run`
that owns everything per-run and holds the forward hot path: ``start`` binds arguments and
records RUNNING, the dispatcher runs the call, ``finish`` records the result and releases
successors by decrementing a counter per successor (no graph walks, no locks). Work done per
atom does not grow with the flow.

Failures are handled when the atoms that are still running have finished
(a "drain"): they are grouped by their innermost retry controller, deepest
first. RETRY reverts the controller's scope and runs it again; REVERT reverts
the scope and passes the failure outward; REVERT_ALL, or a failure that no
controller absorbs, reverts every atom that ran. Reverts run in reverse
dependency order, in parallel where the dispatcher allows, each atom once.

The parts, each a module: :mod:`~flowkit.engines.run` (per-run state, recording, the forward
pass), :mod:`~flowkit.engines.revert` (revert waves), :mod:`~flowkit.engines.retrying` (retry
decisions and delays), :mod:`~flowkit.engines.deciders`, and this module's :class:`Engine`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from flowkit.compiler import TASK, CompiledFlow, compile_flow
from flowkit.engines.cancel import CancelToken, flow_finished, raise_if_cancelled
from flowkit.engines.dispatch import Dispatcher
from flowkit.engines.mapping import dispatcher_for
from flowkit.engines.memory_view import MemoryView
from flowkit.engines.revert import revert_all
from flowkit.engines.run import Flag, Run, Step
from flowkit.engines.slots import AsyncSlots
from flowkit.engines.waiting import Parked, Waits
from flowkit.exceptions import ClaimLost, NotSerializableError, WrappedFailure
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.notifier import Notifier
from flowkit.states import EngineState, FlowState, check_flow_transition
from flowkit.storage import Recorder, Storage


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
        # A fenced run hands the dispatcher no more calls than it runs at once (see Dispatcher.capacity)
        self._fenced = getattr(recorder, "fence", None) is not None
        self._cap = self._dispatcher.capacity if self._fenced else sys.maxsize
        self._flow_uuid = flow_uuid
        self._check_pickle = check_pickle
        self._compiled: CompiledFlow | None = None
        self._storage: Storage | None = None
        self._validated = False
        self._suspend = Flag()
        self._wake = threading.Event()
        self._cancel = CancelToken()
        self._run: Run | None = None
        """The run in progress (or the last one)."""
        self.park_waits = False
        """Stop a run whose runnable atoms are all durable waits (the flow is SUSPENDED and
        :attr:`parked` says until when): what a conductor sets, to give the job back meanwhile."""
        self._waits: Waits | None = None
        self._waits_checked = False
        self.kind = "serial"
        """The engine kind it was loaded as (``engines.load(engine=...)``); a Map's items run on the same."""
        self.job_uuid: str | None = None
        """The job this engine runs for, set by the conductor that claimed it (None otherwise): requests
        to workers carry it, so a worker's per-atom log lines name the job."""
        self.options: dict[str, Any] = {}
        """The options given to :func:`flowkit.engines.load` (``executor``, ``defer_reverts``...); read only
        by callers: the engine's parts take theirs when it is built, so a run never looks here."""

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
            else:  # TaskFlow's storage.backend of an in-memory run: a view, built only when read
                self._storage.memory_view = MemoryView(self._storage)

    def validate(self) -> None:
        """Check that every requirement can be met and, for processes, that every task pickles."""
        self.prepare()
        storage = self.storage
        self.compile().check_store(storage.store)
        if self._check_pickle and not self._validated:
            import pickle

            c = self.compile()
            for atom, kind in zip(c.atoms, c.kinds, strict=True):
                if kind != TASK:  # retry controllers run in the engine, junctions not at all
                    continue
                try:
                    pickle.dumps(atom)
                except Exception as exc:
                    raise NotSerializableError(
                        atom.name, "the task", f"{exc} (the process executor pickles every task)"
                    ) from exc
        self._validated = True

    def reset(self) -> None:
        """Forget every outcome so the flow runs again from the start: atoms and flow go to PENDING.

        For a flow that finished (or stopped) and should run afresh; listeners see each atom go back
        to PENDING. A flow that is running cannot be reset (:class:`~flowkit.exceptions.InvalidStateError`).
        """
        st = self.storage
        check_flow_transition(st.flow_name, st.flow_state, FlowState.PENDING)
        run = self._new_run()
        run.reset_all()
        run.set_flow(FlowState.PENDING)

    def _new_run(self) -> Run:
        """The per-run state for one run (or one reset) over this engine's storage and dispatcher."""
        return Run(
            self.compile(),
            self.storage,
            dispatcher_for(self, self._dispatcher),  # a Map's calls run here, the others pass through
            self.notifier,
            self.atom_notifier,
            self._suspend,
            self._wake,
            self._cap,
            self._cancel,
            self._engine_waits(),
            AsyncSlots.for_run(self.compile(), self._dispatcher.aio.max_async) if self._fenced else None,
        )

    def _engine_waits(self) -> Waits | None:
        """The engine's durable waits, made the first time (None for a flow without wait atoms)."""
        if not self._waits_checked:
            waits = Waits(self.compile(), self._wake, self._dispatcher.nudge)
            self._waits = waits if waits.nodes else None
            self._waits_checked = True
        if self._waits is not None:
            self._waits.park = self.park_waits
        return self._waits

    @property
    def parked(self) -> Parked | None:
        """Why the last run stopped with only waits left (see :attr:`park_waits`), or None."""
        return self._waits.parked if self._waits is not None else None

    def send_event(self, name: str, payload: Any = None) -> None:
        """Send the event ``name`` (from any thread): saved in persistence when the flow has some, and
        handed to this engine's waits at once. A wait that starts later still finds it."""
        from flowkit.persistence import events

        events.check_name(name)
        waits = self._engine_waits()
        backend = self.storage.saved_backend
        if backend is not None:
            events.send_event(backend, name, payload)
        if waits is not None:
            waits.deliver(name, payload, retain=backend is None)

    def suspend(self) -> None:
        """Stop at the next safe point: running atoms finish, nothing new starts; ``run()`` resumes."""
        self._suspend.set()
        self._wake.set()

    def cancel(self, reason: str) -> bool:
        """Cancel the flow: start nothing new, let running atoms finish, revert everything that ran.

        From any thread or a listener. The run in progress (or the next ``run()``, if none is) ends
        REVERTED and raises :class:`~flowkit.exceptions.Cancelled` with ``reason``. False when there is
        nothing to cancel: a cancel was asked already, or the flow has finished and no run is in
        progress. See :mod:`flowkit.engines.cancel` for a cancel during a revert and after a crash.
        """
        return self._cancel.request(str(reason), lambda: flow_finished(self._storage), self.suspend)

    @property
    def cancel_token(self) -> CancelToken:
        """This engine's cancel request, for parts that must hear of a cancel (async atoms, waits)."""
        return self._cancel

    def run(self) -> None:
        """Run the flow to its end (or to a suspend).

        Raises the task's own exception when one atom's failure was reverted
        (:class:`~flowkit.exceptions.WrappedFailure` when several failed); when a revert failed, the
        revert's exception, chained to the failure that caused the revert.
        """
        for _ in self._steps(quiet=True):
            pass

    def run_iter(self) -> Generator[str, Any, None]:
        """Run step by step: yield TaskFlow's engine steps, then the flow's final state.

        The steps are :class:`~flowkit.states.EngineState` values: RESUMING first, then rounds of
        SCHEDULING, WAITING and ANALYZING; the last value is the final :class:`FlowState`
        (SUCCESS, REVERTED, FAILURE or SUSPENDED). Sending a true value (``it.send(True)``)
        suspends the engine, as ``suspend()`` does. Closing the iterator early leaves the flow
        SUSPENDED (atoms that were running run again on the next ``run()``).
        """
        steps = self._steps()
        try:
            for step in steps:
                try:
                    wanted = yield step
                except GeneratorExit:
                    raise
                except Exception:
                    self._fail_run(steps)
                    raise
                if wanted and isinstance(step, EngineState):  # a suspend asked after the end is moot
                    self.suspend()
        finally:
            steps.close()

    def _fail_run(self, steps: Generator[Step, None, None]) -> None:
        """The caller threw an error into ``run_iter()``: as TaskFlow, start nothing more, let the
        running atoms finish, and end the flow FAILURE (the caller's error is then raised)."""
        run = self._run
        if run is None:
            return
        run.stop_as = FlowState.FAILURE
        self.suspend()
        for _ in steps:
            pass

    def _steps(self, quiet: bool = False) -> Generator[Step, None, None]:
        """The run itself, as a generator of steps (``run()`` drains it; ``run_iter()`` hands it out).

        ``quiet`` (``run()``: nobody sees the steps) leaves out the steps yielded per atom."""
        self.validate()
        st = self.storage
        self._wake.clear()
        run = self._run = self._new_run()
        run.quiet = quiet
        self._dispatcher.start(run.progress_of_node)  # bound once per run, not looked up per atom
        fenced = False
        self._cancel.begin()
        # what a cancel stops at once (async executes on the loop): told by the canceller's thread
        forget_cancel = self._cancel.add_callback(self._dispatcher.cancel)
        try:
            yield from self._resume_or_start(run)
        except ClaimLost:
            # A newer claim owns the flow: start nothing more (calls queued for a busy worker are
            # dropped) and write nothing more (every write would be refused).
            fenced = True
            self._dispatcher.discard()
            raise
        finally:
            forget_cancel()
            self._dispatcher.stop()
            self._suspend.clear()
            interrupted = st.flow_state in (FlowState.RUNNING, FlowState.REVERTING, FlowState.RESUMING)
            if interrupted and not fenced:
                self._interrupted(run)
            self._cancel.end(flow_finished(st))
        final = st.flow_state
        yield final
        if final is FlowState.REVERTED:
            raise_if_cancelled(st)
            Failure.reraise_if_any(list(st.flow_failures.values()))
        elif final is FlowState.FAILURE and run.stop_as is not FlowState.FAILURE:
            _raise_failed_reverts(run)

    @staticmethod
    def _resume_or_start(run: Run) -> Iterator[Step]:
        """Where a run begins: a fresh or resumed forward pass, or a revert that was under way.

        A REVERTED flow runs again from the start; saved ``flow_failures`` (a revert interrupted,
        or asked for by ``flowkit run --on-interrupt revert``) mean the flow reverts.
        """
        st = run.st
        reverting = bool(st.flow_failures) and st.flow_state not in (FlowState.REVERTED,)
        if st.flow_state is FlowState.REVERTED:  # as TaskFlow: atoms, then the flow, back to PENDING
            run.reset_all()
            run.set_flow(FlowState.PENDING)
            reverting = False
        if st.flow_state is not FlowState.PENDING:
            run.set_flow(FlowState.RESUMING)
        if reverting:
            yield EngineState.RESUMING
            yield from revert_all(run, dict(st.flow_failures), retry_failed=True)
        else:
            run.keep_start()
            run.set_flow(FlowState.RUNNING)
            yield EngineState.RESUMING
            yield from run.forward()

    @staticmethod
    def _interrupted(run: Run) -> None:
        """The run stopped early (an exception, a storage error, an abandoned run_iter): SUSPENDED.

        Atoms still RUNNING stay so and run again on the next ``run()`` (at-least-once).
        """
        try:
            run.set_flow(FlowState.SUSPENDED)
        except Exception:  # the recorder is what failed: the saved state is resumed as SUSPENDED anyway
            run.st.flow_state = FlowState.SUSPENDED


def _raise_failed_reverts(run: Run) -> None:
    """A flow ended FAILURE: raise what could not be undone, as TaskFlow does, without hiding why.

    The revert's own exception is raised (a :class:`WrappedFailure` when several reverts failed);
    the failures that made the flow revert are chained to it as ``__context__``, so a traceback
    shows both, and they stay readable in ``storage.get_execute_failures()``.
    """
    st = run.st
    reverts = [f for f in st.revert_failures if f is not None]
    if not reverts:
        raise WrappedFailure(run.all_failures())
    error = _as_exception(reverts)
    if error.__context__ is None and st.flow_failures:
        error.__context__ = _as_exception(list(st.flow_failures.values()))
    raise error


def _as_exception(failures: list[Failure]) -> BaseException:
    """The exception ``Failure.reraise_if_any(failures)`` raises, caught (failures is not empty)."""
    try:
        Failure.reraise_if_any(failures)
    except BaseException as exc:  # handed back, to be raised by the caller
        return exc
    raise AssertionError("no failure to raise")  # pragma: no cover
