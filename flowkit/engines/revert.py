"""Revert waves: undo every atom that ran, successors first, each once, in parallel where possible.

A wave counts, for each atom that ran, its successors that still have to be undone; an
atom is reverted when that count reaches zero (the mirror image of running forward). A
revert that fails holds back the atoms before it, which stay as they are for an operator,
while independent branches are still reverted.

:class:`RevertWave` owns one wave's counters and its loop (on the serial engine with nobody to tell,
a plain task's revert is called in the loop itself: see :meth:`RevertWave.go`); the functions here
are the waves a run needs: the whole flow (:func:`revert_all`), a retry controller's scope
(:func:`revert_nodes`), and the reverts a crash interrupted (:func:`finish_interrupted_reverts`).
"""

from __future__ import annotations

import heapq
import sys
import types
from collections import deque
from collections.abc import Generator, Iterable
from itertools import compress, repeat
from operator import is_not, not_
from typing import TYPE_CHECKING, Any

from flowkit.atom import WANTS_RESULT_AND_FAILURES, Atom
from flowkit.compiler import JUNCTION, RETRY, TASK
from flowkit.context import CURRENT as _atom_context
from flowkit.engines.cancel import carry_on
from flowkit.engines.dispatch import REVERT, Completion
from flowkit.engines.task_progress import tell
from flowkit.exceptions import CoroutineResult
from flowkit.failure import Failure
from flowkit.retry import History
from flowkit.states import AtomState, EngineState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.run import Run, Step

S = AtomState
_REVERTIBLE = frozenset({S.SUCCESS, S.FAILURE, S.REVERTING, S.RETRYING, S.RUNNING})
_REVERTING, _REVERTED, _FAILURE, _REVERT_FAILURE = S.REVERTING, S.REVERTED, S.FAILURE, S.REVERT_FAILURE
_SUCCESS, _RUNNING = S.SUCCESS, S.RUNNING
_NO_CLASSES: frozenset[type] = frozenset()
_COROUTINE = types.CoroutineType


class RevertWave:
    """One wave over ``nodes``: which atoms it touches, how many successors each still waits for."""

    __slots__ = (
        "blocked",
        "done",
        "failed",
        "failures",
        "left",
        "ready",
        "run",
        "seq",
        "touched",
    )

    def __init__(self, run: Run, nodes: range, failures: dict[str, Failure], retry_failed: bool) -> None:
        self.run = run
        c, st = run.c, run.st
        states = st.states
        succs = c.succs
        left: dict[int, int] | list[int]
        last: Iterable[int]
        self.seq = st.finished_seq
        self.touched: set[int] | range
        """The atoms the wave handles: those that ran (a PENDING atom has nothing to undo)."""
        touched: set[int] | range
        if len(nodes) == len(states) and S.PENDING not in states:
            # every atom of the flow ran (the usual full revert): counted in C, and a range tells who is
            # touched without a set of every atom
            self.touched = touched = nodes
            left = list(map(len, succs))
            last = compress(nodes, map(not_, left))
        else:
            # found in C: no Python test per atom
            ran = map(is_not, map(states.__getitem__, nodes), repeat(S.PENDING))
            self.touched = touched = set(compress(nodes, ran))
            left = {}
            for x in touched:  # a plain loop: a generator per atom costs more than the counting
                n = 0
                for s in succs[x]:
                    if s in touched:
                        n += 1
                left[x] = n
            last = (x for x, n in left.items() if n == 0)
        self.left = left
        """Per touched atom: its touched successors not reverted yet."""
        self.ready = [(self.latest_first(x), x) for x in last]
        """Atoms whose successors are all reverted, as a heap: the one that finished last comes first, so
        independent branches too (a Map's lanes) are undone in the reverse of the order they ran in."""
        heapq.heapify(self.ready)
        self.blocked = S.REVERT_FAILURE if not retry_failed else None
        """An atom whose revert failed before stays so (and holds back its predecessors) unless retried."""
        self.failures = failures
        """What the flow reverts because of (an atom's revert may ask for ``flow_failures``)."""
        self.failed = False
        self.done = False
        """Every touched atom was handled (False after a suspend stopped the wave)."""

    def latest_first(self, x: int) -> int:
        """Heap key: later finishes first; an atom that failed or was running (no finish) before all, one
        that never started (nothing to undo) after all."""
        seq = self.seq[x]
        if seq:
            return -seq
        return 0 if x in self.run.st.never_started else -sys.maxsize

    def go(self, suspendable: bool) -> Generator[Step, None, bool]:
        """Revert until nothing is left (or a suspend, if ``suspendable``); False if a revert failed.

        The plain route: on the serial engine with nobody to tell (no recorder, no atom listener, no task
        told its progress, no durable wait), a task that succeeded and whose revert the dispatcher makes
        as a plain call is reverted here, in this loop. The same call with the same arguments and context,
        the same state changes in the same order as :meth:`start`, ``Dispatcher.submit`` and
        :meth:`reverted` make, without their six Python calls (with ``set_atom_state``'s) and without a
        dict for the usual ``result``/``flow_failures`` (a reverted no-op task: 52k instructions before,
        38k with the route). Every other atom takes the general route, and the completions of both are
        taken in the order the calls were made.
        """
        run = self.run
        c, st, ready, dispatcher = run.c, run.st, self.ready, run.dispatcher
        states, kinds, atoms, never_started = st.states, c.kinds, c.atoms, st.never_started
        suspend, heappop, heappush = run.suspend, heapq.heappop, heapq.heappush
        notifier, loud = run.atom_notifier, not run.quiet
        found = None
        if st.recorder is None and run.waits is None and not run.told and not run.running:
            found = dispatcher.plain_classes()
        route = found is not None
        plain = found if found is not None else _NO_CLASSES
        # The plain route's calls complete at once; their completions wait here, in the order they were
        # made (as the dispatcher's queue would hold them), with those of the atoms started the usual way.
        done: deque[Completion] = deque()
        contexts, results, revert_results, progress = run.contexts, st.results, st.revert_results, st.progress
        failures, bindings, revert_bindings = self.failures, c.bindings, c.revert_bindings
        left, touched, seq, preds = self.left, self.touched, self.seq, c.preds
        set_context, reset_context = _atom_context.set, _atom_context.reset
        cap, blocked = run.cap, self.blocked
        while True:
            while ready and run.running < cap and not (suspendable and suspend.on):
                x = heappop(ready)[1]
                state = states[x]
                kind = kinds[x]
                if (
                    state is _SUCCESS
                    and kind == TASK
                    and type(atom := atoms[x]) in plain
                    and atom.timeout is None
                    and not notifier.active
                ):
                    # The plain route: start + Dispatcher.submit, inline. SUCCESS may become REVERTING, and
                    # without a recorder that is all set_atom_state does.
                    wants = atom._revert_wants
                    if (
                        revert_bindings[x]
                        or atom.revert_inject_kwargs
                        or (atom._revert_takes_kwargs and (bindings[x] or atom.inject_kwargs))
                    ):
                        kwargs = self.kwargs(x, atom, state)
                    elif wants is WANTS_RESULT_AND_FAILURES:  # revert(self, *args, **kwargs): by keyword
                        kwargs = None
                        result, flow_failures = results[x], failures.copy()  # a copy: see kwargs()
                    else:
                        kwargs = self.kwargs(x, atom, state) if wants else None
                    states[x] = _REVERTING
                    token = set_context(contexts[x])
                    try:
                        if kwargs is not None:
                            out = atom.revert(**kwargs)
                        elif wants:
                            out = atom.revert(result=result, flow_failures=flow_failures)
                        else:
                            out = atom.revert()
                        if out is not None and type(out) is _COROUTINE:  # never a result (CoroutineResult)
                            out.close()
                            raise CoroutineResult(atom.name, REVERT)
                        ok = True
                    except Exception:
                        ok, out = False, Failure()
                    finally:
                        reset_context(token)
                    # Taken at once unless someone sees the steps, or reverts started before it are taken
                    # first: then it waits its turn, as it would in the dispatcher's queue.
                    if loud or ready or done:
                        run.running += 1
                        done.append((x, REVERT, ok, out))
                    elif ok and not notifier.active and x not in progress:
                        # reverted(x, True, out), inline: REVERTING -> REVERTED is allowed, and without a
                        # recorder or progress to keep, set_atom_state only sets it
                        revert_results[x] = out
                        states[x] = _REVERTED
                        for p in preds[x]:  # release(x), inline
                            if p in touched:
                                n = left[p] = left[p] - 1
                                if n == 0:
                                    heappush(ready, (-seq[p] if seq[p] else self.latest_first(p), p))
                    else:
                        self.reverted(x, ok, out)
                elif kind == JUNCTION or (state not in _REVERTIBLE and state is not _REVERT_FAILURE):
                    self.release(x)
                elif state is blocked:
                    self.failed = True
                elif x in never_started and (state is _FAILURE or state is _RUNNING):
                    run.set_atom(x, S.REVERTING)  # execute never ran: there is nothing to undo
                    run.set_atom(x, S.REVERTED)
                    self.release(x)
                else:
                    self.start(x)
                    if route:  # the serial dispatcher's call has completed: queued behind the others
                        item = dispatcher.poll()
                        if item is not None:
                            done.append(item)
            if not run.running:
                break
            if loud:  # Engine.run() drops the steps: not yielded per atom (see Run.quiet)
                yield EngineState.WAITING
            item = done.popleft() if done else dispatcher.wait(None)
            if item is not None:
                x, action, ok, value = item
                if action == REVERT and run.wave is self:  # run.finish's revert case, inline
                    run.running -= 1
                    self.reverted(x, ok, value)
                else:
                    run.finish(x, action, ok, value)
            if loud:
                yield EngineState.ANALYZING
        self.done = not ready
        return not self.failed

    def release(self, x: int) -> None:
        """``x`` is reverted (or needs none): a predecessor with no successor left may be reverted."""
        left, touched, ready, seq = self.left, self.touched, self.ready, self.seq
        for p in self.run.c.preds[x]:
            if p in touched:
                n = left[p] = left[p] - 1
                if n == 0:
                    key = -seq[p] if seq[p] else self.latest_first(p)  # latest_first, inline when it finished
                    heapq.heappush(ready, (key, p))

    def start(self, x: int) -> None:
        """Record REVERTING and call ``x``'s revert with what can still be found of its arguments."""
        run = self.run
        c, st = run.c, run.st
        atom = c.atoms[x]
        kwargs = self.kwargs(x, atom, st.states[x])
        old = st.set_atom_state(x, _REVERTING)  # run.set_atom, inline
        if run.atom_notifier.active:
            run.announce_atom(x, _REVERTING, old)
        run.running += 1
        if run.told and x in run.told:
            tell(atom, 0.0)  # type: ignore[arg-type]
        waits = run.waits
        if waits is not None and x in waits.nodes:  # the engine's own: never sent to a pool or worker
            waits.revert(run, x, kwargs)
            return
        if c.kinds[x] == RETRY:
            kwargs.pop("result", None)
            try:
                out = atom.revert(history=st.histories[x], **kwargs)
            except Exception:
                run.finish(x, REVERT, False, Failure())
            else:
                run.finish(x, REVERT, True, out)
            return
        run.dispatcher.submit(x, atom, REVERT, kwargs, run.contexts[x])

    def kwargs(self, x: int, atom: Atom, prior: AtomState) -> dict[str, Any]:
        """The arguments of ``x``'s revert, as far as they can still be found (it must cope with a partial
        picture); ``prior`` is its state before the revert (FAILURE: its ``result`` is the failure)."""
        c, st = self.run.c, self.run.st
        kwargs: dict[str, Any] = {}
        if atom._revert_takes_kwargs:
            bindings = c.bindings[x]
            if bindings:  # bind_args makes a new dict: it becomes the kwargs
                kwargs = st.bind_args(bindings, partial=True)
            if atom.inject_kwargs:
                kwargs.update(atom.inject_kwargs)
        bindings = c.revert_bindings[x]
        if bindings:
            kwargs.update(st.bind_args(bindings, partial=True))
        if atom.revert_inject_kwargs:
            kwargs.update(atom.revert_inject_kwargs)
        wants = atom._revert_wants
        if wants:
            if "result" in wants:
                kwargs["result"] = st.failures[x] if prior is _FAILURE else st.results[x]
            if "flow_failures" in wants:
                # its own copy (a few hundred instructions for the usual one failure): a revert that
                # changes it must change neither the saved failures nor what the next revert sees
                kwargs["flow_failures"] = self.failures.copy()
        return kwargs

    def reverted(self, x: int, ok: bool, value: Any) -> None:
        """One revert completed (the run has counted it as no longer running)."""
        run = self.run
        st = run.st
        if ok:
            st.revert_results[x] = value
            old = st.set_atom_state(x, _REVERTED)  # run.set_atom, inline
            if run.atom_notifier.active:
                run.announce_atom(x, _REVERTED, old, value)
            if run.told and x in run.told:
                tell(run.c.atoms[x], 1.0)  # type: ignore[arg-type]
            left, touched, ready, seq = self.left, self.touched, self.ready, self.seq  # release(x), inline
            for p in run.c.preds[x]:
                if p in touched:
                    n = left[p] = left[p] - 1
                    if n == 0:
                        heapq.heappush(ready, (-seq[p] if seq[p] else self.latest_first(p), p))
        else:
            value.atom_name = run.c.names[x]
            st.revert_failures[x] = value
            run.set_atom(x, S.REVERT_FAILURE, value)
            self.failed = True


def revert_nodes(
    run: Run,
    nodes: range,
    failures: dict[str, Failure],
    retry_failed: bool = False,
    suspendable: bool = False,
) -> Generator[Step, None, RevertWave]:
    """Revert every atom in ``nodes`` that ran, successors first; the wave tells how it went."""
    wave = RevertWave(run, nodes, failures, retry_failed)
    run.wave = wave
    try:
        yield from wave.go(suspendable)
    finally:
        run.revert_failed = run.revert_failed or wave.failed
    return wave


def revert_all(run: Run, failures: dict[str, Failure], retry_failed: bool) -> Generator[Step, None, None]:
    """Revert the whole flow because of ``failures``: REVERTED, FAILURE (a revert failed) or SUSPENDED."""
    run.st.flow_failures = failures
    run.set_flow(FlowState.REVERTING)
    yield EngineState.SCHEDULING
    wave = yield from revert_nodes(run, range(len(run.c.atoms)), failures, retry_failed, suspendable=True)
    if run.cancel is not None and not wave.done:  # a cancel does not stop a revert: it finishes it
        yield from carry_on(run, wave)
    if run.suspend.is_set() and not wave.done:
        run.set_flow(run.stop_as)
        return
    run.set_flow(FlowState.REVERTED if not run.revert_failed else FlowState.FAILURE)


def finish_interrupted_reverts(run: Run) -> Generator[Step, None, bool]:
    """After a crash mid-revert inside a running flow: finish those reverts first.

    A retry controller saved as RETRYING was reverting its scope for another attempt; an
    atom saved as REVERTING was being reverted. Returns False if a revert failed (the flow
    then reverts everything that ran).
    """
    c, st = run.c, run.st
    states = st.states
    for r in sorted(st.histories):  # outer controllers first: their scope holds the inner ones
        if states[r] is not S.RETRYING:
            continue
        history = st.histories[r]
        failures = dict(history[-1][1]) if len(history) else {}
        wave = yield from revert_nodes(run, range(r + 1, c.scope_end[r]), failures, retry_failed=True)
        if wave.failed:
            return False
        for x in range(r + 1, c.scope_end[r]):
            if c.kinds[x] == JUNCTION:
                states[x] = S.PENDING
                continue
            run.reset_atom(x)
            if c.kinds[x] == RETRY:
                st.histories[x] = History()
    stranded = []
    if S.REVERTING in states:  # a scan in C: most runs have none (a Python test per atom otherwise)
        stranded = [x for x in range(len(states)) if states[x] is S.REVERTING]
    for x in stranded:
        wave = yield from revert_nodes(run, range(x, x + 1), {}, retry_failed=True)
        if wave.failed:
            return False
    return True
