"""What a running task can learn about its own execution, wherever it runs.

The engine sets an :class:`AtomContext` around each ``execute``/``revert`` call (in
the scheduler's thread, a pool thread or a pool process). It is how
``Task.update_progress`` finds the engine to report to, without storing an engine on
the task (one flow object may be loaded into several engines), and how a task gets
the stable id of its atom: the same across retries of a crashed run, so it can serve
as an idempotency key with outside APIs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, NamedTuple

ProgressSink = Callable[[str, float], None]
DetailsSink = Callable[[str, float, dict[str, Any]], None]


class AtomContext(NamedTuple):
    """One call of one atom.

    A named tuple (immutable, fields by name) rather than a frozen dataclass: the engine makes every
    atom's context of a run in one pass in C (:func:`contexts_for`), where a dataclass cost a Python
    call and four slot writes per atom (about a fifth of a serial no-op task's cost).
    """

    atom_name: str
    atom_uuid: str
    """Stable for the atom within its flow detail: use it as an idempotency key."""
    progress: ProgressSink | None = None
    progress_details: DetailsSink | None = None
    """Where progress reported with details goes (the engine's storage); None out of the engine's process."""

    def __reduce__(self) -> tuple[type[AtomContext], tuple[str, str]]:
        return (AtomContext, (self.atom_name, self.atom_uuid))  # the sinks stay in the engine's process


_new = tuple.__new__


def new_context(
    atom_name: str, atom_uuid: str, progress: ProgressSink | None, progress_details: DetailsSink | None
) -> AtomContext:
    """An :class:`AtomContext`, made without the named tuple's ``__new__`` (a Python call)."""
    ctx: AtomContext = _new(AtomContext, (atom_name, atom_uuid, progress, progress_details))
    return ctx


def contexts_for(
    atom_names: Iterable[str],
    atom_uuids: Iterable[str],
    progress: ProgressSink | None,
    progress_details: DetailsSink | None,
) -> list[AtomContext]:
    """The contexts of many atoms (names and uuids side by side) sharing their sinks: one pass in C."""
    fields = zip(atom_names, atom_uuids, repeat(progress), repeat(progress_details), strict=False)
    return list(map(_new, repeat(AtomContext), fields))


_current: contextvars.ContextVar[AtomContext | None] = contextvars.ContextVar("flowkit_atom", default=None)
CURRENT = _current
"""The variable itself, for the engine's per-call path (``set``/``reset`` without a wrapper call)."""


def current() -> AtomContext | None:
    """The context of the atom call running in this thread, or None outside one."""
    return _current.get()


def current_atom_uuid() -> str | None:
    """The running atom's stable id (an idempotency key), or None outside an atom call."""
    ctx = _current.get()
    return ctx.atom_uuid if ctx is not None else None


def set_current(ctx: AtomContext | None) -> contextvars.Token[AtomContext | None]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[AtomContext | None]) -> None:
    _current.reset(token)
