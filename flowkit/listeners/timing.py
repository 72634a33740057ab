"""How long each atom took: execute (RUNNING to SUCCESS/FAILURE) and revert, apart.

Also TaskFlow's timing listeners under their names: :class:`DurationListener`,
:class:`PrintingDurationListener` and :class:`EventTimeListener`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit.listeners.base import Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

LOG = logging.getLogger(__name__)

S = AtomState
_EXECUTE_END = frozenset({S.SUCCESS, S.FAILURE})
_REVERT_END = frozenset({S.REVERTED, S.REVERT_FAILURE})


class TimingListener(Listener):
    """Measures each atom's execute and revert with :func:`time.monotonic`.

    ``timings`` maps atom name -> seconds from RUNNING to SUCCESS or FAILURE;
    ``revert_timings`` maps atom name -> seconds from REVERTING to REVERTED or
    REVERT_FAILURE. An atom that runs more than once (a retried subflow) keeps the
    duration of its latest run. Read them after the run, or under concurrent use
    through :meth:`snapshot`.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.timings: dict[str, float] = {}
        self.revert_timings: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._revert_started: dict[str, float] = {}

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        now = time.monotonic()
        if state is S.RUNNING:
            self._started[atom_name] = now
        elif state in _EXECUTE_END:
            started = self._started.pop(atom_name, None)
            if started is not None:
                self.timings[atom_name] = now - started
        elif state is S.REVERTING:
            self._revert_started.setdefault(atom_name, now)
        elif state in _REVERT_END:
            started = self._revert_started.pop(atom_name, None)
            if started is not None:
                self.revert_timings[atom_name] = now - started

    def elapsed(self, atom_name: str) -> float | None:
        """Seconds so far for an atom that is executing or reverting now, else None."""
        with self._lock:
            started = self._started.get(atom_name, self._revert_started.get(atom_name))
            return None if started is None else time.monotonic() - started

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of ``(timings, revert_timings)``, taken under the listener's lock."""
        with self._lock:
            return dict(self.timings), dict(self.revert_timings)


_STARTING = frozenset({S.RUNNING, S.REVERTING, FlowState.RUNNING, FlowState.REVERTING})
_FINISHED = frozenset(
    {
        S.SUCCESS,
        S.FAILURE,
        S.REVERTED,
        S.REVERT_FAILURE,
        FlowState.SUCCESS,
        FlowState.FAILURE,
        FlowState.REVERTED,
    }
)


def _save_meta(engine: Engine, kind: str, name: str, meta: dict[str, Any]) -> None:
    """Merge ``meta`` into the atom's (or, for ``kind == "flow"``, the flow's) saved metadata, where
    the engine's storage offers TaskFlow's ``update_atom_metadata``/``update_flow_metadata``; a
    failure to save is logged, never raised (listeners observe, they do not steer)."""
    storage = engine.storage
    try:
        if kind == "flow":
            update = getattr(storage, "update_flow_metadata", None)
            if update is not None:
                update(meta)
        else:
            update = getattr(storage, "update_atom_metadata", None)
            if update is not None:
                update(name, meta)
    except Exception:
        LOG.warning("could not save %s of %s %r", meta, kind, name, exc_info=True)


class DurationListener(Listener):
    """TaskFlow's duration listener: seconds from RUNNING (or REVERTING) to the end state, per task,
    retry and flow, in :attr:`durations` (``{(kind, name): seconds}``) and as ``"duration"`` in the
    saved metadata when the storage keeps metadata."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.durations: dict[tuple[str, str], float] = {}
        self._started: dict[tuple[str, str], float] = {}

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        self._receiver("flow", details["flow_name"], state)

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._receiver("task", details["task_name"], state)

    def _retry_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._receiver("retry", details["retry_name"], state)

    def _receiver(self, kind: str, name: str, state: str) -> None:
        key = (kind, name)
        if state == S.PENDING:
            self._started.pop(key, None)
        elif state in _STARTING:
            self._started[key] = time.monotonic()
        elif state in _FINISHED:
            started = self._started.pop(key, None)
            if started is not None:
                elapsed = time.monotonic() - started
                self.durations[key] = elapsed
                self._record_ending(elapsed, kind, name, state)

    def _record_ending(self, elapsed: float, kind: str, name: str, state: str) -> None:
        _save_meta(self.engine, kind, name, {"duration": elapsed})


def _print(message: str) -> None:
    print(message)


class PrintingDurationListener(DurationListener):
    """:class:`DurationListener` that also prints, TaskFlow's way, when each task, retry and flow
    starts (``'a' task started.``) and how long it took (``It took task 'a' 0.52 seconds to finish.``)."""

    def __init__(self, engine: Engine, printer: Callable[[str], object] | None = None) -> None:
        super().__init__(engine)
        self._printer = printer if printer is not None else _print

    def _record_ending(self, elapsed: float, kind: str, name: str, state: str) -> None:
        super()._record_ending(elapsed, kind, name, state)
        self._printer(f"It took {kind} '{name}' {elapsed:0.2f} seconds to finish.")

    def _receiver(self, kind: str, name: str, state: str) -> None:
        super()._receiver(kind, name, state)
        if state in _STARTING:
            self._printer(f"'{name}' {kind} started.")


class EventTimeListener(Listener):
    """TaskFlow's event-time listener: the wall-clock time (``time.time()``) of every transition,
    in :attr:`timestamps` (``{(kind, name): {"RUNNING-timestamp": t, ...}}``) and in the saved
    metadata under the same keys when the storage keeps metadata."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.timestamps: dict[tuple[str, str], dict[str, float]] = {}

    def _stamp(self, kind: str, name: str, state: str) -> None:
        meta = {f"{state}-timestamp": time.time()}
        self.timestamps.setdefault((kind, name), {}).update(meta)
        _save_meta(self.engine, kind, name, meta)

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        self._stamp("flow", details["flow_name"], state)

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._stamp("task", details["task_name"], state)

    def _retry_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._stamp("retry", details["retry_name"], state)
