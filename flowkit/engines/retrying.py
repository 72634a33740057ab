"""Failures, and what retry controllers decide about them.

Failures are handled once the atoms still running have finished. They are grouped by
their innermost controller, deepest first: RETRY reverts the controller's scope and runs
it again (after the controller's delay); REVERT reverts the scope and hands the failure
to the enclosing controller; REVERT_ALL, or a failure no controller absorbs, reverts
everything that ran.

The decisions are functions of the compiled flow, its storage and the run
(:func:`handle_failures`, :func:`ask_retry`, :func:`restart_scope`); the delays before a
controller's next attempt wait in the run's :class:`DelayTimers`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from flowkit.compiler import JUNCTION, RETRY, CompiledFlow
from flowkit.engines import deciders
from flowkit.engines.revert import revert_all, revert_nodes
from flowkit.failure import Failure
from flowkit.retry import RETRY as DO_RETRY
from flowkit.retry import REVERT as DO_REVERT
from flowkit.retry import REVERT_ALL, Decision, History
from flowkit.states import ATOM_DONE, AtomState
from flowkit.storage import Storage

if TYPE_CHECKING:
    from collections import deque

    from flowkit.engines.run import Run, Step

S = AtomState


class DelayTimers:
    """Retry controllers waiting out their delay before the next attempt: (due time, node) in a heap."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[tuple[float, int]] = []
        """(due time, node), earliest first; the hot loop reads it to skip the timers when empty."""

    def __bool__(self) -> bool:
        return bool(self.heap)

    def add(self, delay: float, r: int) -> None:
        heapq.heappush(self.heap, (time.monotonic() + delay, r))

    def timeout(self) -> float | None:
        """Seconds until the next is due (None: no timer, wait for as long as it takes)."""
        heap = self.heap
        if not heap:
            return None
        return max(0.0, heap[0][0] - time.monotonic())

    def fire(self, ready: deque[int]) -> None:
        """Queue every controller whose delay has passed."""
        heap = self.heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            ready.append(heapq.heappop(heap)[1])

    def drop(self, scope: range) -> None:
        """Forget the timers of nodes in ``scope`` (an outer controller restarts it)."""
        self.heap[:] = [(due, x) for due, x in self.heap if x not in scope]
        heapq.heapify(self.heap)

    def clear(self) -> None:
        self.heap.clear()


def handle_failures(run: Run) -> Generator[Step, None, bool]:
    """Act on the failures of a drained run; return True when the flow is over."""
    c = run.c
    failed, run.failed = run.failed, {}
    everything = {c.names[i]: f for i, f in failed.items()}
    groups: dict[int, dict[str, Failure]] = {}
    for i, f in failed.items():
        groups.setdefault(c.retry_of[i], {})[c.names[i]] = f
    revert_everything = False
    while groups and not revert_everything:
        r = max(groups)
        failures = groups.pop(r)
        revert_everything = r < 0 or not (yield from _settle(run, r, failures, everything, groups))
    if not revert_everything:
        return False
    run.timers.clear()
    yield from revert_all(run, everything, retry_failed=False)
    return True


def _settle(
    run: Run,
    r: int,
    failures: dict[str, Failure],
    everything: dict[str, Failure],
    groups: dict[int, dict[str, Failure]],
) -> Generator[Step, None, bool]:
    """Let controller ``r`` settle the failures of its scope; False when everything must be reverted."""
    c = run.c
    decision = ask_retry(c, run.st, r, failures, everything)
    if decision is DO_RETRY:
        # Saved first (a crash mid-revert resumes the retry); announced once the scope is reverted,
        # where TaskFlow's listeners see it.
        old = run.st.set_atom_state(r, S.RETRYING)
        wave = yield from revert_nodes(run, range(r + 1, c.scope_end[r]), failures)
        if wave.failed:
            return False
        run.announce_atom(r, S.RETRYING, old)
        restart_scope(run, r)
        return True
    if decision is DO_REVERT and c.retry_of[r] >= 0:
        wave = yield from revert_nodes(run, range(r, c.scope_end[r]), failures)
        if wave.failed:
            return False
        groups.setdefault(c.retry_of[r], {}).update(failures)
        return True
    return False  # REVERT_ALL, or REVERT with nothing outside to absorb it


def ask_retry(
    c: CompiledFlow, st: Storage, r: int, failures: dict[str, Failure], everything: dict[str, Failure]
) -> Decision:
    """Record ``failures`` in controller ``r``'s history and ask it what to do.

    A controller that raises decides REVERT_ALL; its own failure joins ``everything``.
    """
    history = st.histories[r]
    history._record_failures(failures)
    if st.recorder is not None:
        st.recorder.retry_changed(st, r)
    atom = c.retry(r)
    try:
        kwargs = st.bind_args(c.bindings[r])
        kwargs.update(atom.inject_kwargs)
        return Decision(atom.on_failure(history=history, **kwargs))
    except Exception:
        failure = Failure()
        failure.atom_name = c.names[r]
        everything[c.names[r]] = failure
        return REVERT_ALL


def restart_scope(run: Run, r: int) -> None:
    """Reset a retry controller's scope and schedule the controller (after its delay)."""
    _reset_scope(run, r)
    st = run.st
    if st.states[r] is not S.RETRYING:
        run.set_atom(r, S.RETRYING)
    _recount_scope(run, r)
    delay = run.c.retry(r).delay_before(len(st.histories[r]) + 1)
    if delay > 0:
        run.timers.add(delay, r)
    else:
        run.ready.append(r)


def _reset_scope(run: Run, r: int) -> None:
    """Forget the outcomes inside ``r``'s scope: atoms, nested controllers' histories, deciders."""
    c, st = run.c, run.st
    scope = range(r + 1, c.scope_end[r])
    for x in scope:
        if c.kinds[x] == JUNCTION:
            st.states[x] = S.PENDING
        else:
            run.reset_atom(x)
        if c.kinds[x] == RETRY:  # nested controllers start each outer attempt afresh
            st.histories[x] = History()
            if st.recorder is not None:
                st.recorder.retry_changed(st, x)
    deciders.forget(run, scope)


def _recount_scope(run: Run, r: int) -> None:
    """Count again what the scope's atoms (and their successors) wait for; only ``r`` is ready."""
    c, states, waiting = run.c, run.st.states, run.waiting
    scope = range(r, c.scope_end[r])
    affected = set(scope)
    for x in scope:
        affected.update(c.succs[x])
    for x in affected:
        if states[x] in ATOM_DONE and x != r:
            continue
        waiting[x] = sum(1 for p in c.preds[x] if states[p] not in ATOM_DONE)
    waiting[r] = 0
    # Atoms of the scope released before the failure must wait for the controller again.
    kept = [x for x in run.ready if x not in scope and waiting[x] == 0]
    run.ready.clear()
    run.ready.extend(kept)
    run.timers.drop(scope)
