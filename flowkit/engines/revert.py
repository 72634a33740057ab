"""Revert waves: undo every atom that ran, successors first, each once, in parallel where possible.

A wave counts, for each atom that ran, its successors that still have to be undone; an
atom is reverted when that count reaches zero (the mirror image of running forward). A
revert that fails holds back the atoms before it, which stay as they are for an operator,
while independent branches are still reverted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

from flowkit.compiler import JUNCTION, RETRY
from flowkit.engines.dispatch import REVERT
from flowkit.engines.run_state import RunState
from flowkit.failure import Failure
from flowkit.retry import History
from flowkit.states import AtomState, FlowState

S = AtomState
_REVERTIBLE = frozenset({S.SUCCESS, S.FAILURE, S.REVERTING, S.RETRYING, S.RUNNING})


class RevertWaves(RunState):
    """The engine's revert layer."""

    def _revert_all(
        self, failures: dict[str, Failure], retry_failed: bool
    ) -> Generator[FlowState, None, None]:
        st = self._st
        st.flow_failures = failures
        self._set_flow(FlowState.REVERTING)
        yield FlowState.REVERTING
        ok = yield from self._revert_wave(range(len(self._c.atoms)), failures, retry_failed, suspendable=True)
        if self._suspend.is_set() and not self._wave_done:
            self._set_flow(FlowState.SUSPENDED)
            return
        self._set_flow(FlowState.REVERTED if ok and not self._revert_failed else FlowState.FAILURE)

    def _revert_wave(
        self,
        nodes: range,
        failures: dict[str, Failure],
        retry_failed: bool = False,
        suspendable: bool = False,
    ) -> Generator[FlowState, None, bool]:
        """Revert every atom in ``nodes`` that ran, successors first; False if a revert failed."""
        c, st = self._c, self._st
        states = st.states
        touched = {x for x in nodes if states[x] is not S.PENDING}
        blocked = S.REVERT_FAILURE if not retry_failed else None
        left = {x: sum(1 for s in c.succs[x] if s in touched) for x in touched}
        order = sorted((x for x, n in left.items() if n == 0), key=lambda x: -st.finished_seq[x])
        rready = deque(order)
        self._rleft, self._rtouched, self._rready = left, touched, rready
        self._wave_done = False
        failed_before = self._revert_failed
        self._revert_failed = False
        self._flow_failures_now = failures
        while True:
            while rready and self._running < self._cap and not (suspendable and self._suspend.is_set()):
                x = rready.popleft()
                state = states[x]
                if c.kinds[x] == JUNCTION or (state not in _REVERTIBLE and state is not S.REVERT_FAILURE):
                    self._revert_release(x)
                elif state is blocked:
                    self._revert_failed = True
                elif state is S.FAILURE and x in self._st.never_started:
                    self._set_atom(x, S.REVERTING)  # execute never ran: there is nothing to undo
                    self._set_atom(x, S.REVERTED)
                    self._revert_release(x)
                else:
                    self._start_revert(x)
            if not self._running:
                break
            item = self._dispatcher.wait(None)
            if item is not None:
                self._finish(*item)
                yield FlowState.REVERTING
        self._wave_done = not rready
        ok = not self._revert_failed
        self._revert_failed = self._revert_failed or failed_before
        return ok

    def _revert_release(self, x: int) -> None:
        left, touched, rready = self._rleft, self._rtouched, self._rready
        for p in self._c.preds[x]:
            if p in touched:
                left[p] -= 1
                if left[p] == 0:
                    rready.append(p)

    def _start_revert(self, x: int) -> None:
        c, st = self._c, self._st
        atom = c.atoms[x]
        prior = st.states[x]
        # revert gets what can still be found: it must cope with a partial picture
        kwargs: dict[str, Any] = {}
        if atom._revert_takes_kwargs:  # type: ignore[union-attr]
            kwargs.update(st.bind_args(c.bindings[x], partial=True))
            kwargs.update(atom.inject_kwargs)  # type: ignore[union-attr]
        kwargs.update(st.bind_args(c.revert_bindings[x], partial=True))
        kwargs.update(atom.revert_inject_kwargs)  # type: ignore[union-attr]
        wants = atom._revert_wants  # type: ignore[union-attr]
        if "result" in wants:
            kwargs["result"] = st.failures[x] if prior is S.FAILURE else st.results[x]
        if "flow_failures" in wants:
            kwargs["flow_failures"] = dict(self._flow_failures_now)
        self._set_atom(x, S.REVERTING)
        self._running += 1
        if c.kinds[x] == RETRY:
            kwargs.pop("result", None)
            try:
                out = atom.revert(st.histories[x], **kwargs)  # type: ignore[union-attr]
            except Exception:
                self._finish(x, REVERT, False, Failure())
            else:
                self._finish(x, REVERT, True, out)
            return
        self._dispatcher.submit(x, atom, REVERT, kwargs, self._context(x))  # type: ignore[arg-type]

    def _reverted(self, x: int, ok: bool, value: Any) -> None:
        st = self._st
        if ok:
            st.revert_results[x] = value
            self._set_atom(x, S.REVERTED, value)
            self._revert_release(x)
        else:
            value.atom_name = self._c.names[x]
            st.revert_failures[x] = value
            self._set_atom(x, S.REVERT_FAILURE, value)
            self._revert_failed = True

    def _finish_interrupted_reverts(self) -> Generator[FlowState, None, bool]:
        """After a crash mid-revert inside a running flow: finish those reverts first.

        A retry controller saved as RETRYING was reverting its scope for another attempt; an
        atom saved as REVERTING was being reverted. Returns False if a revert failed (the flow
        then reverts everything that ran).
        """
        c, st = self._c, self._st
        states = st.states
        for r in sorted(st.histories):  # outer controllers first: their scope holds the inner ones
            if states[r] is not S.RETRYING:
                continue
            history = st.histories[r]
            failures = dict(history[-1][1]) if len(history) else {}
            if not (yield from self._revert_wave(range(r + 1, c.scope_end[r]), failures, retry_failed=True)):
                return False
            for x in range(r + 1, c.scope_end[r]):
                if c.kinds[x] == JUNCTION:
                    states[x] = S.PENDING
                    continue
                st.reset_atom(x)
                if c.kinds[x] == RETRY:
                    st.histories[x] = History()
        stranded = [x for x in range(len(states)) if states[x] is S.REVERTING]
        if stranded:
            for x in stranded:
                if not (yield from self._revert_wave(range(x, x + 1), {}, retry_failed=True)):
                    return False
        return True
