"""Flow and atom transitions printed as they happen, one line each, to a stream."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from flowkit.failure import Failure
from flowkit.listeners.base import Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

Timestamps = Literal["wall", "relative", "none"]


class PrintingListener(Listener):
    """Prints one line per transition to ``stream`` (default: ``sys.stderr`` at the time of printing).

    ``timestamps`` is ``"wall"`` (``12:04:05.123``), ``"relative"`` (``+0.123s`` since
    the listener was registered) or ``"none"``. A FAILURE or REVERT_FAILURE line carries
    the exception's type and message. With ``progress=True`` task progress is printed too.
    Lines look like::

        12:04:05.123  flow  'create-cluster'       PENDING -> RUNNING
        12:04:05.124  task  'create-server-1'      PENDING -> RUNNING
        12:04:05.389  task  'configure-cluster'    RUNNING -> FAILURE  QuotaExceeded: quota exceeded
    """

    def __init__(
        self,
        engine: Engine,
        stream: TextIO | None = None,
        timestamps: Timestamps = "wall",
        progress: bool = False,
    ) -> None:
        super().__init__(engine)
        if timestamps not in ("wall", "relative", "none"):
            raise ValueError(f"timestamps must be 'wall', 'relative' or 'none', got {timestamps!r}")
        self.stream = stream
        self.timestamps = timestamps
        self.progress = progress
        self._t0 = time.monotonic()

    def register(self) -> None:
        with self._lock:
            if not self.registered:
                self._t0 = time.monotonic()
            super().register()

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        self._print("flow", details.get("flow_name"), f"{details.get('old_state')} -> {state}")

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
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
