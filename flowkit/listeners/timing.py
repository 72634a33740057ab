"""How long each atom took: execute (RUNNING to SUCCESS/FAILURE) and revert, apart."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flowkit.listeners.base import Listener
from flowkit.states import AtomState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

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
