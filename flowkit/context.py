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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ProgressSink = Callable[[str, float], None]
DetailsSink = Callable[[str, float, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class AtomContext:
    """One call of one atom."""

    atom_name: str
    atom_uuid: str
    """Stable for the atom within its flow detail: use it as an idempotency key."""
    progress: ProgressSink | None = None
    progress_details: DetailsSink | None = None
    """Where progress reported with details goes (the engine's storage); None out of the engine's process."""

    def __getstate__(self) -> tuple[str, str]:
        return (self.atom_name, self.atom_uuid)  # the sink stays in the engine's process

    def __setstate__(self, state: tuple[str, str]) -> None:
        object.__setattr__(self, "atom_name", state[0])
        object.__setattr__(self, "atom_uuid", state[1])
        object.__setattr__(self, "progress", None)
        object.__setattr__(self, "progress_details", None)


_new = object.__new__
_set_name, _set_uuid, _set_progress, _set_details = (
    AtomContext.__dict__[f].__set__ for f in ("atom_name", "atom_uuid", "progress", "progress_details")
)


def new_context(
    atom_name: str, atom_uuid: str, progress: ProgressSink | None, progress_details: DetailsSink | None
) -> AtomContext:
    """An :class:`AtomContext`, made without the frozen dataclass's ``__init__`` (its generic
    ``object.__setattr__`` per field): the engine makes one per atom call."""
    ctx: AtomContext = _new(AtomContext)
    _set_name(ctx, atom_name)
    _set_uuid(ctx, atom_uuid)
    _set_progress(ctx, progress)
    _set_details(ctx, progress_details)
    return ctx


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
