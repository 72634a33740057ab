"""A listener that keeps every transition it hears in a list: for tests, and for TaskFlow's tests.

Named and shaped like TaskFlow's ``taskflow.listeners.capturing``: ``values`` collects whatever
:meth:`CaptureListener._format_capture` returns for each flow, task and retry transition (by
default ``(kind, state, details)``), and a subclass changes that one method to record strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowkit.listeners.base import DEFAULT_LISTEN_FOR, Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine


class CaptureListener(Listener):
    """Appends ``_format_capture(kind, state, details)`` to :attr:`values` for each transition.

    ``capture_flow``/``capture_task``/``capture_retry`` switch a kind off; ``skip_tasks``,
    ``skip_retries`` and ``skip_flows`` name atoms or flows to leave out; ``values`` may be a list
    to append to (shared between listeners, or kept from a previous run).
    """

    FLOW = "flow"
    """Kind of a flow transition in the captured values."""
    TASK = "task"
    """Kind of a task transition in the captured values."""
    RETRY = "retry"
    """Kind of a retry controller transition in the captured values."""

    def __init__(
        self,
        engine: Engine,
        task_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        capture_flow: bool = True,
        capture_task: bool = True,
        capture_retry: bool = True,
        skip_tasks: Iterable[str] | None = None,
        skip_retries: Iterable[str] | None = None,
        skip_flows: Iterable[str] | None = None,
        values: list[Any] | None = None,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._capture = {self.FLOW: capture_flow, self.TASK: capture_task, self.RETRY: capture_retry}
        self._skip = {
            self.TASK: frozenset(skip_tasks or ()),
            self.RETRY: frozenset(skip_retries or ()),
            self.FLOW: frozenset(skip_flows or ()),
        }
        self.values: list[Any] = values if values is not None else []

    @staticmethod
    def _format_capture(kind: str, state: str, details: dict[str, Any]) -> Any:
        """What one transition is recorded as; override to record something handier to compare."""
        return (kind, state, details)

    def _record(self, kind: str, state: str, details: dict[str, Any]) -> None:
        if self._capture[kind] and details[f"{kind}_name"] not in self._skip[kind]:
            self.values.append(self._format_capture(kind, state, details))

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        self._record(self.FLOW, state, details)

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._record(self.TASK, state, details)

    def _retry_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        self._record(self.RETRY, state, details)
