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
from operator import attrgetter

from flowkit.compiler import TASK, CompiledFlow
from flowkit.context import reset_current, set_current
from flowkit.task import Task

LOG = logging.getLogger(__name__)

_BASE_UPDATE = Task.update_progress
_NONE: frozenset[int] = frozenset()
_notifier_of = attrgetter("_notifier")


def progress_nodes(compiled: CompiledFlow) -> frozenset[int]:
    """The node ids of the tasks that observe the engine's 0.0/1.0 progress calls (usually none)."""
    atoms = compiled.atoms
    # Usually no task can observe the calls: found by two passes in C, with no test per atom in Python
    # (junctions and retry controllers keep Task's update_progress and have no notifier either).
    if not any(map(_own_update, compiled.atom_classes())) and (
        not Task.notifiers_made or not any(map(_notifier_of, atoms))
    ):
        return _NONE
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
        # the attribute, not ``atom.__dict__``: reading __dict__ makes a dict of every task's attributes
        # (kept for the task's life, and walked by every collection that meets it)
        notifier = atom._notifier
        if notifier is not None and notifier.active:
            out.append(i)
    return frozenset(out)


def _own_update(cls: type) -> bool:
    """Does ``cls`` define an ``update_progress`` of its own (any class, a task or not)?"""
    return getattr(cls, "update_progress", _BASE_UPDATE) is not _BASE_UPDATE


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
