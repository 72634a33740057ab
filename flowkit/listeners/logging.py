"""Flow and atom transitions written to a :mod:`logging` logger.

Named like TaskFlow's ``taskflow.listeners.logging``; inside this module ``logging`` is
still the standard library (imports are absolute).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowkit.failure import Failure
from flowkit.listeners.base import DEFAULT_LISTEN_FOR, Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

LOG = logging.getLogger(__name__)

_FAILED_ATOM = frozenset({AtomState.FAILURE, AtomState.REVERT_FAILURE})
_FAILED_FLOW = frozenset({FlowState.REVERTED, FlowState.FAILURE})


class LoggingListener(Listener):
    """Logs every flow and atom transition (and, optionally, progress).

    Transitions are logged at ``level`` (INFO); an atom's FAILURE or REVERT_FAILURE, and a
    flow that ends REVERTED or FAILURE, at ``failure_level`` (WARNING), with the exception's type
    and message (and its traceback text when ``tracebacks`` is true). ``logger``
    defaults to ``flowkit.listeners.logging``.

    Given TaskFlow's ``log=`` keyword instead of ``logger=``, it behaves as TaskFlow's listener:
    everything at ``level`` (DEBUG unless given), a failed atom's record carrying its exception
    (``exc_info``).
    """

    def __init__(
        self,
        engine: Engine,
        logger: logging.Logger | None = None,
        level: int | None = None,
        failure_level: int | None = None,
        progress: bool = False,
        tracebacks: bool = False,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        super().__init__(engine)
        self.taskflow_style = log is not None and logger is None
        if self.taskflow_style:
            level = logging.DEBUG if level is None else level
            failure_level = level if failure_level is None else failure_level
        self.logger = logger if logger is not None else (log if log is not None else LOG)
        self.level = logging.INFO if level is None else level
        self.failure_level = logging.WARNING if failure_level is None else failure_level
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
                exc_info=result.exc_info if self.taskflow_style and result.exc_info is not None else None,
            )
        else:
            self.logger.log(self.level, "%s %r %s -> %s", kind, atom_name, old, state)

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        if self.progress:
            self.logger.log(self.level, "task %r progress %.0f%%", atom_name, progress * 100)

    def _describe(self, failure: Failure, atom_name: str | None = None) -> str:
        text = failure.summary
        if atom_name is not None:
            text = f"atom {atom_name!r} failed with {text}"
        if self.tracebacks and failure.traceback_str:
            text += "\nTraceback (most recent call last):\n" + failure.traceback_str.rstrip("\n")
        return text


_DYNAMIC_FAILURE_STATES = frozenset(
    {AtomState.FAILURE, AtomState.REVERTED, AtomState.RETRYING, AtomState.REVERT_FAILURE}
)
_DYNAMIC_FLOW_FAILURE_STATES = frozenset({FlowState.FAILURE, FlowState.REVERTED})


class DynamicLoggingListener(Listener):
    """TaskFlow's dynamic logging listener: the level follows the state.

    Transitions are logged at ``level`` (default DEBUG); a task or retry that fails, reverts or
    retries, and a flow that ends FAILURE or REVERTED, at ``failure_level`` (default WARNING). A
    failed atom's record carries the exception (``exc_info``) when it is still live, else its
    traceback text. Results are shown unless the atom is named in ``hide_inputs_outputs_of``.
    """

    def __init__(
        self,
        engine: Engine,
        task_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        log: logging.Logger | None = None,
        failure_level: int = logging.WARNING,
        level: int = logging.DEBUG,
        hide_inputs_outputs_of: Iterable[str] = (),
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self.logger = log if log is not None else LOG
        self.level = level
        self.failure_level = failure_level
        self._hidden = frozenset(hide_inputs_outputs_of)

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        level = self.failure_level if state in _DYNAMIC_FLOW_FAILURE_STATES else self.level
        self.logger.log(
            level,
            "Flow '%s' (%s) transitioned into state '%s' from state '%s'",
            details.get("flow_name"),
            details.get("flow_uuid"),
            state,
            details.get("old_state"),
        )

    def _atom_receiver(self, kind: str, state: AtomState, details: dict[str, Any]) -> None:
        name, uuid, old = details[f"{kind}_name"], details[f"{kind}_uuid"], details.get("old_state")
        level = self.failure_level if state in _DYNAMIC_FAILURE_STATES else self.level
        result = details.get("result")
        if isinstance(result, Failure):
            exc_info = (
                result.exc_info if result.exc_info is not None and result.exc_info[2] is not None else None
            )
            text = "" if exc_info else f"\n{result.pformat(traceback=True)}"
            self.logger.log(
                self.failure_level,
                "%s '%s' (%s) transitioned into state '%s' from state '%s'%s",
                kind.capitalize(),
                name,
                uuid,
                state,
                old,
                text,
                exc_info=exc_info,
            )
        elif "result" in details and name not in self._hidden:
            self.logger.log(
                level,
                "%s '%s' (%s) transitioned into state '%s' from state '%s' with result '%s'",
                kind.capitalize(),
                name,
                uuid,
                state,
                old,
                result,
            )
        else:
            self.logger.log(
                level,
                "%s '%s' (%s) transitioned into state '%s' from state '%s'",
                kind.capitalize(),
                name,
                uuid,
                state,
                old,
            )

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._atom_receiver("task", state, details)

    def _retry_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._atom_receiver("retry", state, details)
