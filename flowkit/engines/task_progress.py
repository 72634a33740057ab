"""The engine's own progress calls: ``task.update_progress(0.0)`` when a task starts, ``(1.0)`` when it ends.

TaskFlow's engine calls ``update_progress`` on its copy of the task as it records RUNNING (0.0) and
SUCCESS (1.0) (REVERTING and REVERTED for a revert). Tasks rely on it: some override
``update_progress`` to print or log, others listen on ``task.notifier``. Doing it in the engine (not in
the process that runs the task) means a task run by a process pool or a remote worker is told too.

Only tasks that can observe the call get it: those whose class overrides ``update_progress`` and
those whose notifier has listeners when the run starts. They are found once per run
(:func:`progress_nodes`); every other task costs the engine one test of an empty set. Saved progress
needs no write: storage and ``pformat`` work it out from the state (SUCCESS/REVERTED is 1.0).
"""

from __future__ import annotations

import logging

from flowkit.compiler import TASK, CompiledFlow
from flowkit.context import reset_current, set_current
from flowkit.task import Task

LOG = logging.getLogger(__name__)

_BASE_UPDATE = Task.update_progress


def progress_nodes(compiled: CompiledFlow) -> frozenset[int]:
    """The node ids of the tasks that observe the engine's 0.0/1.0 progress calls (usually none)."""
    out = []
    kinds = compiled.kinds
    # per class, asked once: 0 not a task, 1 a task that keeps Task's update_progress, 2 its own
    told: dict[type, int] = {}
    for i, atom in enumerate(compiled.atoms):
        how = told.get(type(atom))
        if how is None:
            how = told[type(atom)] = (
                0 if not isinstance(atom, Task) else 1 if type(atom).update_progress is _BASE_UPDATE else 2
            )
        if how == 0 or kinds[i] != TASK:
            continue
        if how == 2:
            out.append(i)
            continue
        notifier = atom.__dict__.get("_notifier")
        if notifier is not None and notifier.active:
            out.append(i)
    return frozenset(out)


def tell(task: Task, progress: float) -> None:
    """Call ``task.update_progress(progress)`` as the engine: outside any task's context (the engine may
    itself run inside a task, whose progress this is not), and never letting it break the run."""
    token = set_current(None)
    try:
        task.update_progress(progress)
    except Exception:
        LOG.exception("task %r: update_progress(%s) raised; the run goes on", task.name, progress)
    finally:
        reset_current(token)
