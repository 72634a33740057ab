"""Group commit: several completions taken at once are saved in one transaction before any is acted on.

The parallel engines' hot loop (:meth:`~flowkit.engines.run.Run.forward`) takes one completion at a
time. When its recorder can group (``Recorder.groups``: the SQL backends' recorder) and another
completion is already queued behind the first, it takes every queued one and hands them here:

1. each outcome goes into storage as :meth:`Run.finish` would put it, the recorder holding the writes
   (``Recorder.hold``);
2. the recorder saves them all in one transaction (``Recorder.commit_held``): one commit, and with
   ``durability="atom"`` one flush to disk, for all of them;
3. only then are listeners told and successors released, in the order the completions came.

So the rule stays: nothing acts on a transition before it is saved. If the save fails, the states in
memory go back to what is saved and the error stops the engine, as a single write's would. Only
EXECUTE completions of tasks are grouped (a revert, a retry controller, an atom that never started
take the one-by-one path, where they were before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowkit.compiler import RETRY
from flowkit.engines.dispatch import EXECUTE, Completion
from flowkit.engines.task_progress import tell
from flowkit.states import AtomState

if TYPE_CHECKING:
    from flowkit.engines.run import Run

S = AtomState


def finish_together(run: Run, items: list[Completion]) -> None:
    """Finish ``items`` (at least two completions) and every other one already queued; see the module
    docstring."""
    poll = run.dispatcher.poll
    while True:
        more = poll()
        if more is None:
            break
        items.append(more)
    kinds = run.c.kinds
    if run.wave is not None or any(action != EXECUTE or kinds[i] == RETRY for i, action, _, _ in items):
        for item in items:
            run.finish(*item)
        return
    st = run.st
    recorder = st.recorder
    assert recorder is not None
    settled: list[tuple[int, bool, Any, AtomState]] = []
    recorder.hold()
    try:
        _settle(run, items, settled)
    finally:  # what settled is saved even when a later one failed to (as one by one it would have been)
        try:
            recorder.commit_held()
        except BaseException:
            for i, ok, _value, old in settled:  # memory never claims what the database does not have
                st.states[i] = old
                if ok:
                    st.results[i] = None
                    st.finished_seq[i] = 0
                else:
                    st.failures[i] = None
            raise
    told, atoms = run.told, run.c.atoms
    for i, ok, value, old in settled:
        run.announce_atom(i, S.SUCCESS if ok else S.FAILURE, old, value)
        if ok:
            if told and i in told:
                tell(atoms[i], 1.0)  # type: ignore[arg-type]
            run.release(i)
        else:
            run.failed[i] = value


def _settle(run: Run, items: list[Completion], settled: list[tuple[int, bool, Any, AtomState]]) -> None:
    """Put each outcome into storage as :meth:`Run.finish` does (the recorder holds the writes)."""
    st, c, slots = run.st, run.c, run.slots
    for i, _action, ok, value in items:
        run.running -= 1
        if slots is not None:  # as Run.finish: the call's slot is free for an atom held for one
            slots.freed(run, i)
        if ok and c.keyed[i]:
            missing = run._missing_key(i, value)
            if missing is not None:
                ok, value = False, missing
        if ok:
            st.results[i] = value
            settled.append((i, True, value, st.set_atom_state(i, S.SUCCESS)))
        else:
            value.atom_name = c.names[i]
            st.failures[i] = value
            settled.append((i, False, value, st.set_atom_state(i, S.FAILURE)))
