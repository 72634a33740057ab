"""Flow and atom transitions printed as they happen: flowkit's aligned lines, or TaskFlow's sentences."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from flowkit.failure import Failure
from flowkit.listeners.base import DEFAULT_LISTEN_FOR, Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

Timestamps = Literal["wall", "relative", "none"]


_FINISH_STATES = frozenset(
    {AtomState.FAILURE, AtomState.SUCCESS, AtomState.REVERTED, AtomState.REVERT_FAILURE}
)


class PrintingListener(Listener):
    """Prints each transition as it happens, in one of two forms.

    flowkit's (with ``stream=``, ``timestamps=`` or ``progress=``): one aligned line per flow and
    atom transition to ``stream`` (default: ``sys.stderr`` at the time of printing).
    ``timestamps`` is ``"wall"`` (``12:04:05.123``, the default), ``"relative"`` (``+0.123s``
    since the listener was registered) or ``"none"``. A FAILURE or REVERT_FAILURE line carries
    the exception's type and message. With ``progress=True`` task progress is printed too.
    Lines look like::

        12:04:05.123  flow  'create-cluster'       PENDING -> RUNNING
        12:04:05.124  task  'create-server-1'      PENDING -> RUNNING
        12:04:05.389  task  'configure-cluster'    RUNNING -> FAILURE  QuotaExceeded: quota exceeded

    TaskFlow's (called as TaskFlow code calls it: with none of those, optionally ``stderr=`` and
    ``*_listen_for=``): TaskFlow's sentences to stdout (stderr with ``stderr=True``), a failed
    task's traceback after its line::

        <engine> has moved flow 'f' (uuid) into state 'RUNNING' from state 'PENDING'
        <engine> has moved task 't' (uuid) into state 'SUCCESS' from state 'RUNNING' with result '5'
        (failure=False)
    """

    def __init__(
        self,
        engine: Engine,
        task_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        stderr: bool = False,
        *,
        stream: TextIO | None = None,
        timestamps: Timestamps | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(engine, task_listen_for, flow_listen_for, retry_listen_for)
        if timestamps not in (None, "wall", "relative", "none"):
            raise ValueError(f"timestamps must be 'wall', 'relative' or 'none', got {timestamps!r}")
        #: TaskFlow's sentences (True) or flowkit's aligned lines (False)
        self.taskflow_style = stream is None and timestamps is None and not progress
        self._receives_tasks = self._receives_flows = self.taskflow_style
        self._receives_retries = False
        self.stderr = stderr
        self.stream = stream
        self.timestamps: Timestamps = timestamps or "wall"
        self.progress = progress
        self._t0 = time.monotonic()

    # -- TaskFlow's form ------------------------------------------------------------------------

    def _dump(self, message: str, *args: Any, exc_info: Any = None) -> None:
        out = sys.stderr if self.stderr else sys.stdout
        print(message % args, file=out)
        if exc_info is not None:
            traceback.print_exception(exc_info[0], exc_info[1], exc_info[2], file=out)

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        self._dump(
            "%s has moved flow '%s' (%s) into state '%s' from state '%s'",
            self.engine,
            details.get("flow_name"),
            details.get("flow_uuid"),
            state,
            details.get("old_state"),
        )

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        head = "%s has moved task '%s' (%s) into state '%s' from state '%s'"
        args = (
            self.engine,
            details.get("task_name"),
            details.get("task_uuid"),
            state,
            details.get("old_state"),
        )
        if state not in _FINISH_STATES:
            self._dump(head, *args)
            return
        result = details.get("result")
        failed = isinstance(result, Failure)
        exc_info = result.exc_info if isinstance(result, Failure) else None
        self._dump(head + " with result '%s' (failure=%s)", *args, result, failed, exc_info=exc_info)

    # -- flowkit's form -------------------------------------------------------------------------

    def register(self) -> None:
        with self._lock:
            if not self.registered:
                self._t0 = time.monotonic()
            super().register()

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        if self.taskflow_style:
            return
        self._print("flow", details.get("flow_name"), f"{details.get('old_state')} -> {state}")

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        if self.taskflow_style:
            return
        text = f"{details.get('old_state')} -> {state}"
        result = details.get("result")
        if isinstance(result, Failure):
            text += f"  {result.summary}"
        self._print(details.get("kind", "atom"), atom_name, text)

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        if self.progress:
            self._print("task", atom_name, f"progress {progress * 100:.0f}%")

    def _stamp(self) -> str:
        if self.timestamps == "wall":
            return datetime.now().strftime("%H:%M:%S.%f")[:-3] + "  "
        if self.timestamps == "relative":
            return f"{f'+{time.monotonic() - self._t0:.3f}s':>8}  "
        return ""

    def _print(self, kind: str, name: Any, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"{self._stamp()}{kind:<5} {name!r:<22} {text}\n")
        stream.flush()
