"""Flow and atom transitions written to a :mod:`logging` logger.

Named like TaskFlow's ``taskflow.listeners.logging``; inside this module ``logging`` is
still the standard library (imports are absolute).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flowkit.failure import Failure
from flowkit.listeners.base import Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

LOG = logging.getLogger(__name__)

_FAILED_ATOM = frozenset({AtomState.FAILURE, AtomState.REVERT_FAILURE})
_FAILED_FLOW = frozenset({FlowState.REVERTED, FlowState.FAILURE})


class LoggingListener(Listener):
    """Logs every flow and atom transition (and, optionally, progress).

    Transitions are logged at ``level``; an atom's FAILURE or REVERT_FAILURE, and a
    flow that ends REVERTED or FAILURE, at ``failure_level``, with the exception's type
    and message (and its traceback text when ``tracebacks`` is true). ``logger``
    defaults to ``flowkit.listeners.logging``.
    """

    def __init__(
        self,
        engine: Engine,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        failure_level: int = logging.WARNING,
        progress: bool = False,
        tracebacks: bool = False,
    ) -> None:
        super().__init__(engine)
        self.logger = logger if logger is not None else LOG
        self.level = level
        self.failure_level = failure_level
        self.progress = progress
        self.tracebacks = tracebacks

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        name, old = details.get("flow_name"), details.get("old_state")
        if state in _FAILED_FLOW:
            failures = self.engine.storage.flow_failures
            why = "; ".join(self._describe(f, atom) for atom, f in failures.items()) or "no failure recorded"
            self.logger.log(self.failure_level, "flow %r %s -> %s because of: %s", name, old, state, why)
        else:
            self.logger.log(self.level, "flow %r %s -> %s", name, old, state)

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        kind, old, result = details.get("kind", "atom"), details.get("old_state"), details.get("result")
        if state in _FAILED_ATOM and isinstance(result, Failure):
            self.logger.log(
                self.failure_level,
                "%s %r %s -> %s: %s",
                kind,
                atom_name,
                old,
                state,
                self._describe(result),
            )
        else:
            self.logger.log(self.level, "%s %r %s -> %s", kind, atom_name, old, state)

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        if self.progress:
            self.logger.log(self.level, "task %r progress %.0f%%", atom_name, progress * 100)

    def _describe(self, failure: Failure, atom_name: str | None = None) -> str:
        text = str(failure)
        if atom_name is not None:
            text = f"atom {atom_name!r} failed with {text}"
        if self.tracebacks and failure.traceback_str:
            text += "\nTraceback (most recent call last):\n" + failure.traceback_str.rstrip("\n")
        return text
