"""Progress 0.0 and 1.0 told to a task's own notifier around its ``execute`` and ``revert``.

TaskFlow's engine sends ``EVENT_UPDATE_PROGRESS`` with 0.0 to ``task.notifier`` when a task starts
(RUNNING, REVERTING) and 1.0 when it ends well (SUCCESS, REVERTED); programs that draw progress
bars from ``task.notifier`` rely on both ends. flowkit does the same, but only for a run of a flow
whose tasks have callbacks on their notifiers: then one callback on the engine's atom notifier
does it, for the length of the run. Other flows pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit.compiler import TASK
from flowkit.notifier import ANY, EVENT_UPDATE_PROGRESS
from flowkit.states import AtomState
from flowkit.task import Task

if TYPE_CHECKING:
    from flowkit.engines.run import Run

_AT = {
    AtomState.RUNNING: 0.0,
    AtomState.REVERTING: 0.0,
    AtomState.SUCCESS: 1.0,
    AtomState.REVERTED: 1.0,
}


def bracket(run: Run) -> Callable[[], None] | None:
    """Start telling watched tasks 0.0/1.0 for this run; return what stops it (None: no task watched)."""
    if not Task.notifiers_made:
        return None
    c = run.c
    watched: dict[str, Task] = {}
    for i, atom in enumerate(c.atoms):
        if c.kinds[i] == TASK and isinstance(atom, Task):
            notifier = atom.__dict__.get("_notifier")
            if notifier is not None and notifier.active:
                watched[c.names[i]] = atom
    if not watched:
        return None

    def tell(state: Any, details: dict[str, Any]) -> None:
        progress = _AT.get(state)
        task = watched.get(details.get("atom_name", ""))
        if progress is not None and task is not None:
            task.notifier.notify(EVENT_UPDATE_PROGRESS, {"progress": progress})

    run.atom_notifier.register(ANY, tell)

    def stop() -> None:
        run.atom_notifier.deregister(ANY, tell)

    return stop
