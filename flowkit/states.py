"""The states of flows and atoms, and the only transitions between them that flowkit allows.

States are ``str`` Enums so they compare equal to TaskFlow's bare strings
(``AtomState.SUCCESS == "SUCCESS"``) and store as plain text in a database.
The transition tables sit beside the states and :func:`check_flow_transition` /
:func:`check_atom_transition` / :func:`check_job_transition` are the one place they are enforced (the
SQL job board's conditional updates match :func:`job_sources`, which reads the same table).
"""

from __future__ import annotations

from enum import StrEnum

from flowkit.exceptions import InvalidStateError


class FlowState(StrEnum):
    """The state of a whole flow (one engine run of one flow detail)."""

    PENDING = "PENDING"
    """Created, nothing has run yet."""
    RUNNING = "RUNNING"
    """Atoms are being executed."""
    REVERTING = "REVERTING"
    """A failure was not absorbed by a retry controller; atoms that ran are being reverted."""
    SUCCESS = "SUCCESS"
    """Every atom ended in SUCCESS or IGNORE."""
    FAILURE = "FAILURE"
    """Reverting itself failed; some atoms could not be undone (see their REVERT_FAILURE)."""
    REVERTED = "REVERTED"
    """A failure was reverted cleanly: every atom that ran has been undone."""
    SUSPENDED = "SUSPENDED"
    """Stopped at a safe point on request; ``run()`` again continues."""
    RESUMING = "RESUMING"
    """Loading saved state before continuing a suspended or crashed flow."""


class AtomState(StrEnum):
    """The state of one task or retry controller inside a flow."""

    PENDING = "PENDING"
    """Not started (or reset for another attempt)."""
    RUNNING = "RUNNING"
    """``execute`` has been (or is being) called."""
    SUCCESS = "SUCCESS"
    """``execute`` returned; its result is saved."""
    FAILURE = "FAILURE"
    """``execute`` raised; its Failure is saved."""
    REVERTING = "REVERTING"
    """``revert`` has been (or is being) called."""
    REVERTED = "REVERTED"
    """``revert`` returned."""
    REVERT_FAILURE = "REVERT_FAILURE"
    """``revert`` raised: the atom's effect may still exist."""
    RETRYING = "RETRYING"
    """A retry controller decided to run its subflow again (retry atoms only)."""
    IGNORE = "IGNORE"
    """Skipped because a decider on a link into it returned false; counts as done."""


F = FlowState
A = AtomState

FLOW_TRANSITIONS: dict[FlowState, frozenset[FlowState]] = {
    F.PENDING: frozenset({F.RUNNING, F.SUSPENDED, F.RESUMING}),
    F.RUNNING: frozenset({F.SUCCESS, F.REVERTING, F.SUSPENDED, F.FAILURE}),
    F.REVERTING: frozenset({F.REVERTED, F.FAILURE, F.SUSPENDED}),
    F.SUSPENDED: frozenset({F.RESUMING, F.RUNNING, F.REVERTING, F.PENDING}),
    F.RESUMING: frozenset({F.RUNNING, F.REVERTING, F.SUSPENDED, F.SUCCESS, F.REVERTED, F.FAILURE}),
    # Finished flows may be run again from their saved state (``run()`` twice, or resume), or be
    # reset to PENDING (``engine.reset()``) to run afresh.
    F.SUCCESS: frozenset({F.RESUMING, F.RUNNING, F.PENDING}),
    F.REVERTED: frozenset({F.RESUMING, F.RUNNING, F.PENDING}),
    F.FAILURE: frozenset({F.RESUMING, F.RUNNING, F.REVERTING, F.PENDING}),
}
"""Allowed flow transitions: ``FLOW_TRANSITIONS[old]`` is the set of states ``old`` may move to."""

ATOM_TRANSITIONS: dict[AtomState, frozenset[AtomState]] = {
    # PENDING -> FAILURE: failed before execute was called (bad arguments, a decider that raised).
    A.PENDING: frozenset({A.RUNNING, A.IGNORE, A.REVERTED, A.FAILURE}),
    # RUNNING -> RUNNING: a crash left the atom RUNNING; it runs again (at-least-once).
    A.RUNNING: frozenset({A.SUCCESS, A.FAILURE, A.RUNNING, A.REVERTING, A.PENDING}),
    A.SUCCESS: frozenset({A.REVERTING, A.RETRYING, A.PENDING}),
    A.FAILURE: frozenset({A.REVERTING, A.PENDING}),
    A.REVERTING: frozenset({A.REVERTED, A.REVERT_FAILURE, A.REVERTING}),
    A.REVERTED: frozenset({A.PENDING, A.RUNNING}),
    A.REVERT_FAILURE: frozenset({A.REVERTING, A.PENDING}),
    A.RETRYING: frozenset({A.RUNNING, A.REVERTING, A.PENDING}),
    A.IGNORE: frozenset({A.PENDING}),
}
"""Allowed atom transitions: ``ATOM_TRANSITIONS[old]`` is the set of states ``old`` may move to."""

FLOW_FINISHED = frozenset({F.SUCCESS, F.FAILURE, F.REVERTED})
"""Flow states in which an engine run has ended."""

ATOM_DONE = frozenset({A.SUCCESS, A.IGNORE})
"""Atom states that release the atom's successors."""


def check_flow_transition(name: str, old: FlowState, new: FlowState) -> None:
    """Raise :class:`InvalidStateError` unless a flow may move from ``old`` to ``new``."""
    if old is not new and new not in FLOW_TRANSITIONS[old]:
        raise InvalidStateError("flow", name, old.value, new.value)


def check_atom_transition(name: str, old: AtomState, new: AtomState) -> None:
    """Raise :class:`InvalidStateError` unless an atom may move from ``old`` to ``new``."""
    if new not in ATOM_TRANSITIONS[old]:
        raise InvalidStateError("atom", name, old.value, new.value)


# TaskFlow-style module constants, so ``states.SUCCESS`` reads as it does there.
PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVERTING = "REVERTING"
REVERTED = "REVERTED"
REVERT_FAILURE = "REVERT_FAILURE"
RETRYING = "RETRYING"
IGNORE = "IGNORE"
SUSPENDED = "SUSPENDED"
RESUMING = "RESUMING"
SCHEDULING = "SCHEDULING"
WAITING = "WAITING"
ANALYZING = "ANALYZING"


class EngineState(StrEnum):
    """The steps ``Engine.run_iter()`` yields between the flow's start and its final state.

    They are TaskFlow's engine states, for programs that drive several engines by hand: one
    RESUMING when the run begins, then rounds of SCHEDULING (ready atoms are started), WAITING
    (for a call to finish) and ANALYZING (its outcome is recorded). The last value yielded is
    the flow's final :class:`FlowState`. Nothing is saved under these names.
    """

    RESUMING = "RESUMING"
    SCHEDULING = "SCHEDULING"
    WAITING = "WAITING"
    ANALYZING = "ANALYZING"


class JobState(StrEnum):
    """The state of a job on a job board (:mod:`flowkit.jobboard`)."""

    UNCLAIMED = "UNCLAIMED"
    """Posted (or abandoned, or its owner died): any conductor may claim it."""
    CLAIMED = "CLAIMED"
    """Owned by one conductor, whose session (ZooKeeper) or lease (SQL) keeps the claim alive."""
    COMPLETE = "COMPLETE"
    """Consumed by its owner after the flow ended; gone from the board."""
    TRASHED = "TRASHED"
    """Moved out of the way by its owner without running it; kept for inspection."""
    SET_ASIDE = "SET_ASIDE"
    """Kept off the board with a reason: abandoned or crashed too often, disallowed or malformed."""
    CANCELLED = "CANCELLED"
    """Cancelled (``board.cancel``): its flow was reverted by the conductor that held or next claimed it;
    kept off the board, with the cancel's reason, for inspection."""
    WAITING = "WAITING"
    """Parked: its flow waits for a time or an event (durable waits); claimable again at its wake-up
    time, or once one of its awaited events is sent (``board.send_event``)."""


J = JobState

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # UNCLAIMED -> SET_ASIDE: a claim found the job over its attempt limit and set it aside instead.
    J.UNCLAIMED: frozenset({J.CLAIMED, J.SET_ASIDE}),
    # CLAIMED -> UNCLAIMED: abandoned, or the owner's session or lease ended.
    # CLAIMED -> CANCELLED: its owner reverted the flow of a job whose cancel was asked for.
    # CLAIMED -> WAITING: parked by its owner while its flow waits (see flowkit.jobboard.parking).
    J.CLAIMED: frozenset({J.UNCLAIMED, J.COMPLETE, J.TRASHED, J.SET_ASIDE, J.CANCELLED, J.WAITING}),
    # WAITING -> CLAIMED: claimed at its wake-up time, after one of its events, or once cancelled.
    J.WAITING: frozenset({J.CLAIMED}),
    J.COMPLETE: frozenset(),
    J.TRASHED: frozenset(),
    J.SET_ASIDE: frozenset(),
    J.CANCELLED: frozenset(),
}
"""Allowed job transitions: ``JOB_TRANSITIONS[old]`` is the set of states ``old`` may move to."""


def job_is_final(state: JobState) -> bool:
    """Whether a job in ``state`` is over (no move out of it): a cancel can no longer reach it."""
    return not JOB_TRANSITIONS[state]


OPERATOR_JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # requeue: an operator fixed what made the job unrunnable and offers it again (attempts reset).
    J.SET_ASIDE: frozenset({J.UNCLAIMED, J.TRASHED}),
    # trash: an operator takes a job nobody holds off the board without running it.
    J.UNCLAIMED: frozenset({J.TRASHED}),
}
"""Moves only an operator makes (``board.requeue``, ``board.trash_job``), never a claimant: kept apart
from :data:`JOB_TRANSITIONS` because the claim machinery matches rows by those."""


def check_operator_transition(uuid: str, old: JobState, new: JobState) -> None:
    """Raise :class:`InvalidStateError` unless an operator may move a job from ``old`` to ``new``."""
    if new not in OPERATOR_JOB_TRANSITIONS.get(old, frozenset()):
        raise InvalidStateError("job", uuid, old.value, new.value)


def job_sources(new: JobState) -> frozenset[JobState]:
    """The states a job may be in to move to ``new`` (what a conditional update must match)."""
    return frozenset(old for old, targets in JOB_TRANSITIONS.items() if new in targets)


def check_job_transition(uuid: str, old: JobState, new: JobState) -> None:
    """Raise :class:`InvalidStateError` unless a job may move from ``old`` to ``new``."""
    if new not in JOB_TRANSITIONS[old]:
        raise InvalidStateError("job", uuid, old.value, new.value)


# TaskFlow's job state names, for the same reason.
UNCLAIMED = "UNCLAIMED"
CLAIMED = "CLAIMED"
COMPLETE = "COMPLETE"
