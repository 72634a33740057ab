"""A fenced run's two caps on calls in flight: async calls against ``max_async``, the others against the
dispatcher's capacity (``max_workers``), neither against the other.

Why a fenced run caps at all: it runs for a job board claim, and no call may wait in a queue after the
write that allowed it (a newer claim that took the flow over meanwhile would find it started behind its
back; see :attr:`~flowkit.engines.dispatch.Dispatcher.capacity`). Async calls queue on the loop for a
slot beyond ``max_async`` and other calls in the pool beyond ``max_workers``, so each kind needs its own
cap. An atom whose kind is full is held here, not started and not recorded RUNNING, and goes back to
the run's ready queue when a call of its kind ends (or when the run drains).

Only a fenced run of a flow with async atoms has :class:`AsyncSlots`; any other run pays nothing.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from flowkit.compiler import TASK, CompiledFlow
from flowkit.engines.aio import flags_of

if TYPE_CHECKING:
    from flowkit.engines.run import Run


class AsyncSlots:
    """Counts a fenced run's async calls in flight; holds atoms whose kind has no room (see module)."""

    __slots__ = ("cap", "held_async", "held_other", "holders")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        """At most this many async executes in flight (the engine's ``max_async``)."""
        self.holders: set[int] = set()
        """Nodes whose async execute is in flight."""
        self.held_async: deque[int] = deque()
        self.held_other: deque[int] = deque()

    @classmethod
    def for_run(cls, compiled: CompiledFlow, max_async: int) -> AsyncSlots | None:
        """The slots of a fenced run of ``compiled``; None when it has no async execute (nothing to split)."""
        for atom, kind in zip(compiled.atoms, compiled.kinds, strict=True):
            if kind == TASK and flags_of(atom)[0]:
                return cls(max_async)
        return None

    def admit(self, run: Run, i: int) -> bool:
        """Whether atom ``i`` may start now; if not, it is held until a call of its kind ends."""
        if flags_of(run.c.atoms[i])[0]:
            if len(self.holders) >= self.cap:
                self.held_async.append(i)
                return False
            self.holders.add(i)
            return True
        if run.running - len(self.holders) >= run.cap:
            self.held_other.append(i)
            return False
        return True

    def freed(self, run: Run, i: int) -> None:
        """Atom ``i``'s execute ended: the next atom held for a call of its kind may be tried again."""
        if i in self.holders:
            self.holders.discard(i)
            if self.held_async:
                run.ready.appendleft(self.held_async.popleft())
        elif self.held_other:
            run.ready.appendleft(self.held_other.popleft())

    def release_all(self, run: Run) -> None:
        """The run drained (a failure, a suspend, a cancel): every held atom is ready again."""
        run.ready.extend(self.held_async)
        run.ready.extend(self.held_other)
        self.held_async.clear()
        self.held_other.clear()
