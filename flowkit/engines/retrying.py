"""Failures, and what retry controllers decide about them.

Failures are handled once the atoms still running have finished. They are grouped by
their innermost controller, deepest first: RETRY reverts the controller's scope and runs
it again (after the controller's delay); REVERT reverts the scope and hands the failure
to the enclosing controller; REVERT_ALL, or a failure no controller absorbs, reverts
everything that ran.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Generator

from flowkit.compiler import JUNCTION, RETRY
from flowkit.engines.revert import RevertWaves
from flowkit.failure import Failure
from flowkit.retry import RETRY as DO_RETRY
from flowkit.retry import REVERT as DO_REVERT
from flowkit.retry import REVERT_ALL, Decision, History
from flowkit.states import ATOM_DONE, AtomState, FlowState

S = AtomState


class RetryHandling(RevertWaves):
    """The engine's failure-handling layer."""

    def _handle_failures(self) -> Generator[FlowState, None, bool]:
        """Act on the failures of a drained run; return True when the flow is over."""
        c = self._c
        failed, self._failed = self._failed, {}
        everything = {c.names[i]: f for i, f in failed.items()}
        groups: dict[int, dict[str, Failure]] = {}
        for i, f in failed.items():
            groups.setdefault(c.retry_of[i], {})[c.names[i]] = f
        revert_all = False
        while groups:
            r = max(groups)
            failures = groups.pop(r)
            if r < 0 or revert_all:
                revert_all = True
                continue
            decision = self._ask_retry(r, failures, everything)
            if decision is DO_RETRY:
                self._set_atom(r, S.RETRYING)  # saved first: a crash mid-revert resumes the retry
                ok = yield from self._revert_wave(range(r + 1, c.scope_end[r]), failures)
                if not ok:
                    revert_all = True
                    continue
                self._restart_scope(r)
            elif decision is DO_REVERT and c.retry_of[r] < 0:
                revert_all = True  # nothing outside absorbs it: revert everything, flow REVERTING
            elif decision is DO_REVERT:
                ok = yield from self._revert_wave(range(r, c.scope_end[r]), failures)
                if not ok:
                    revert_all = True
                    continue
                groups.setdefault(c.retry_of[r], {}).update(failures)
            else:
                revert_all = True
        if not revert_all:
            return False
        self._timers.clear()
        yield from self._revert_all(everything, retry_failed=False)
        return True

    def _ask_retry(self, r: int, failures: dict[str, Failure], everything: dict[str, Failure]) -> Decision:
        c, st = self._c, self._st
        history = st.histories[r]
        history._record_failures(failures)
        if st.recorder is not None:
            st.recorder.retry_changed(st, r)
        atom = c.atoms[r]
        try:
            kwargs = st.bind_args(c.bindings[r])
            kwargs.update(atom.inject_kwargs)  # type: ignore[union-attr]
            decision = Decision(atom.on_failure(history, **kwargs))  # type: ignore[union-attr]
        except Exception:
            failure = Failure()
            failure.atom_name = c.names[r]
            everything[c.names[r]] = failure
            return REVERT_ALL
        return decision

    def _restart_scope(self, r: int) -> None:
        """Reset a retry controller's scope and schedule the controller (after its delay)."""
        c, st = self._c, self._st
        end = c.scope_end[r]
        for x in range(r + 1, end):
            if c.kinds[x] == JUNCTION:
                st.states[x] = S.PENDING
            else:
                st.reset_atom(x)
            if c.kinds[x] == RETRY:  # nested controllers start each outer attempt afresh
                st.histories[x] = History()
                if st.recorder is not None:
                    st.recorder.retry_changed(st, x)
            self._ignored.discard(x)
        for x in range(r + 1, end):
            for link in c.deciders.get(x, ()):
                self._decided.discard(id(link))
        if st.states[r] is not S.RETRYING:
            self._set_atom(r, S.RETRYING)
        states, waiting = st.states, self._waiting
        affected = set(range(r, end))
        for x in range(r, end):
            affected.update(c.succs[x])
        for x in affected:
            if states[x] in ATOM_DONE and x != r:
                continue
            waiting[x] = sum(1 for p in c.preds[x] if states[p] not in ATOM_DONE)
        waiting[r] = 0
        # Atoms of the scope released before the failure must wait for the controller again.
        scope = range(r, end)
        kept = [x for x in self._ready if x not in scope and waiting[x] == 0]
        self._ready.clear()
        self._ready.extend(kept)
        self._timers[:] = [(due, x) for due, x in self._timers if x not in scope]
        heapq.heapify(self._timers)
        atom = c.atoms[r]
        delay = atom.delay_before(len(st.histories[r]) + 1)  # type: ignore[union-attr]
        if delay > 0:
            heapq.heappush(self._timers, (time.monotonic() + delay, r))
        else:
            self._ready.append(r)

    def _timer_timeout(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _fire_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            self._ready.append(heapq.heappop(timers)[1])
