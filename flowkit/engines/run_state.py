"""The state of one engine run, and the helpers every part of the engine records it through.

:class:`RunState` is the base of the engine's layers (:mod:`~flowkit.engines.revert`,
:mod:`~flowkit.engines.retrying`, :mod:`~flowkit.engines.engine`): it owns the per-run
counters and queues and the two ways state changes leave the engine, storage (recorded
before anything acts on it) and the notifiers.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from flowkit.compiler import RETRY, CompiledFlow
from flowkit.context import AtomContext
from flowkit.engines.dispatch import Dispatcher
from flowkit.failure import Failure
from flowkit.notifier import EVENT_UPDATE_PROGRESS, Notifier
from flowkit.states import AtomState, FlowState
from flowkit.storage import Storage

_KIND_NAMES = ("task", "retry", "junction")


class RunState:
    """Per-run state and the recording helpers; see the module docstring."""

    notifier: Notifier
    atom_notifier: Notifier
    _dispatcher: Dispatcher
    _suspend: threading.Event
    _cap: int
    _wake: threading.Event
    _c: CompiledFlow
    _st: Storage

    def _new_run(self, compiled: CompiledFlow, storage: Storage) -> None:
        """Fresh counters and queues for one ``run()``; saved state lives in ``storage``."""
        self._c = compiled
        self._st = storage
        n = len(compiled.atoms)
        self._waiting = [0] * n
        """Per node: predecessors not yet done."""
        self._ready: deque[int] = deque()
        self._running = 0
        self._failed: dict[int, Failure] = {}
        """Failures not handled yet (handled once the running atoms have drained)."""
        self._ignored: set[int] = set()
        self._decided: set[int] = set()
        self._timers: list[tuple[float, int]] = []
        self._revert_failed = False

    def _finish(self, i: int, action: str, ok: bool, value: Any) -> None:
        raise NotImplementedError  # the engine's: one completion of one call

    def _release(self, i: int) -> None:
        raise NotImplementedError  # the engine's: successors of a done atom may start

    def _set_flow(self, state: FlowState) -> None:
        st = self._st
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
        st = self._st
        out = list(st.flow_failures.values())
        out.extend(f for f in st.revert_failures if f is not None)
        return out
