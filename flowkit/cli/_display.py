"""The per-atom table ``flowkit run`` shows: state, duration and progress of every atom.

:class:`AtomTable` is a :class:`~flowkit.listeners.TimingListener` that also keeps each
atom's latest state and progress; :meth:`AtomTable.render` draws it as a rich table, live
(``rich.live.Live`` calls it from its refresh thread, hence the listener's lock) or once at
the end when the output is not a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from flowkit.compiler import JUNCTION
from flowkit.listeners.timing import TimingListener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

S = AtomState
STATE_STYLES: dict[str, str] = {
    S.PENDING: "dim",
    S.RUNNING: "bold cyan",
    S.SUCCESS: "green",
    S.FAILURE: "bold red",
    S.REVERTING: "yellow",
    S.REVERTED: "yellow",
    S.REVERT_FAILURE: "bold red",
    S.RETRYING: "magenta",
    S.IGNORE: "dim",
    FlowState.REVERTED: "bold yellow",
    FlowState.FAILURE: "bold red",
    FlowState.SUCCESS: "bold green",
}


class AtomTable(TimingListener):
    """Every atom of the engine's flow (junctions excluded) with its state, duration and progress."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        compiled = engine.compile()
        self.flow_name = compiled.flow.name
        self.flow_state: str = FlowState.PENDING
        self.atoms: list[tuple[str, str]] = [
            (compiled.names[i], ("task", "retry")[compiled.kinds[i]])
            for i in range(len(compiled.names))
            if compiled.kinds[i] != JUNCTION
        ]
        self.states: dict[str, str] = {name: S.PENDING for name, _ in self.atoms}
        self.progress: dict[str, float] = {}

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        self.flow_state = state

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        super().on_atom(atom_name, state, details)
        self.states[atom_name] = state
        if state is S.SUCCESS and atom_name in self.progress:
            self.progress[atom_name] = 1.0
        elif state is S.PENDING:
            self.progress.pop(atom_name, None)

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        self.progress[atom_name] = progress

    def _duration(self, name: str) -> str:
        state, running = self.states[name], self.elapsed(name)
        parts = []
        if state is S.RUNNING and running is not None:
            parts.append(f"{running:.2f}s…")
        elif name in self.timings:
            parts.append(f"{self.timings[name]:.2f}s")
        if state is S.REVERTING and running is not None:
            parts.append(f"revert {running:.2f}s…")
        elif name in self.revert_timings:
            parts.append(f"revert {self.revert_timings[name]:.2f}s")
        return ", ".join(parts)

    def render(self) -> Table:
        """The table as it is now (safe to call from any thread)."""
        with self._lock:
            style = STATE_STYLES.get(self.flow_state, "bold")
            table = Table(title=Text.assemble(f"flow {self.flow_name!r}: ", (self.flow_state, style)))
            table.add_column("atom", no_wrap=True)
            table.add_column("kind")
            table.add_column("state", no_wrap=True)
            table.add_column("duration", justify="right", no_wrap=True)
            table.add_column("progress", no_wrap=True)
            for name, kind in self.atoms:
                state = self.states[name]
                progress = self.progress.get(name)
                bar: Any = ""
                if progress is not None:
                    bar = Table.grid(padding=(0, 1))
                    bar.add_row(ProgressBar(total=1.0, completed=progress, width=12), f"{progress:4.0%}")
                table.add_row(name, kind, Text(state, STATE_STYLES.get(state, "")), self._duration(name), bar)
            return table
