"""The conditions and values of the SQL board's claim statements: which rows may be claimed, what a
claim writes (its lease and fencing token), and which rows a claimant still owns.

Apart from the board because these decide who holds a job, and each is one SQL expression with no
I/O: the board composes them into its statements and runs them in its transactions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.states import JobState, job_sources

T = schema.jobs
S = JobState


def available(board: str, now: float) -> sa.ColumnElement[bool]:
    """Rows of ``board`` that may be claimed now. A lease that ran out ended its claim (CLAIMED ->
    UNCLAIMED), though the row still says CLAIMED until someone claims it again; a WAITING (parked)
    job is claimable from its ``wake_at`` on (an event sets it to the time it came).

    The states are also listed as one ``IN`` that the ``(board, state, ...)`` index can seek on: a
    board keeps its consumed jobs for days (its history), and an ``OR`` of the cases alone had
    PostgreSQL read every row of the board, finished ones included, at every claim.
    """
    cases = claimable_cases(now)
    return sa.and_(
        T.c.board == board,
        T.c.state.in_(sorted(case.state for case in cases)),
        sa.or_(
            *(
                T.c.state == case.state if case.when is None else sa.and_(T.c.state == case.state, case.when)
                for case in cases
            )
        ),
    )


class Claimable(NamedTuple):
    """One way a row may be claimable: its state, the condition it must also meet (None: none), and
    the order the claim's search for it reads rows in (an index's order, so it stops at its first)."""

    state: str
    when: sa.ColumnElement[bool] | None
    order: tuple[sa.ColumnElement[Any], ...]


CLAIM_ORDER: tuple[sa.ColumnElement[Any], ...] = (T.c.priority.desc(), T.c.id)
"""Best job first: the highest priority, then the oldest (the ``flowkit_jobs_pick`` index's order)."""


def claimable_cases(now: float | sa.BindParameter[float]) -> list[Claimable]:
    """Each way a row may be claimable at ``now`` (a time or a bound parameter): the states that may be
    claimed outright, an expired claim, a parked job that is due. The one definition of
    :func:`available` and of the claim's searches. A due parked job is searched for in due order, on
    the ``flowkit_jobs_wake`` index: in the claim order the search read every job parked ahead."""
    outright = state_values(job_sources(S.CLAIMED) - {S.WAITING})
    cases = [Claimable(state, None, CLAIM_ORDER) for state in outright]
    cases.append(Claimable(S.CLAIMED.value, T.c.lease_expires < now, CLAIM_ORDER))
    cases.append(Claimable(S.WAITING.value, T.c.wake_at <= now, (T.c.wake_at, T.c.id)))
    return cases


def claim_values(
    who: str | sa.BindParameter[str],
    token: str | sa.BindParameter[str],
    now: float,
    lease: float,
    dialect: str,
) -> dict[str, object]:
    """What a claim by ``who`` writes: its owner, lease token and expiry, attempt and fencing token."""
    return {
        "state": S.CLAIMED.value,
        "owner": who,
        "lease_token": token,
        "lease_expires": now + lease,
        "attempts": T.c.attempts + 1,
        "claim_epoch": next_epoch(dialect),
        "updated_on": now,
        "wake_at": None,
        "awaiting": None,
    }


def next_epoch(dialect: str) -> sa.ColumnElement[int]:
    """The claim's fencing token, computed by the claim statement itself (so in claim order).

    One more than the job's last claim's, and at least the database's clock in microseconds: so
    claims of one job always grow (the row lock orders them), and a job posted later for a flow
    detail that an earlier job ran out-ranks that job's claims too, unless the database's clock
    went back in between.
    """
    if dialect == "postgresql":
        now = sa.extract("epoch", sa.func.clock_timestamp()) * 1_000_000
        return sa.func.greatest(T.c.claim_epoch + 1, sa.cast(now, sa.BigInteger))
    now = (sa.func.julianday("now") - 2440587.5) * 86_400_000_000  # SQLite: days since the epoch
    return sa.func.max(T.c.claim_epoch + 1, sa.cast(now, sa.BigInteger))


def owned_by(
    board: str, sequence: int | None, who: str, token: str | None, target: JobState
) -> sa.ColumnElement[bool]:
    """The job's row, if ``who`` holds its claim (with ``token``) and it may move to ``target``."""
    return sa.and_(
        T.c.board == board,
        T.c.id == sequence,
        T.c.state.in_(state_values(job_sources(target))),
        T.c.owner == who,
        T.c.lease_token == token,
    )


def claim_next_statement(board: str, dialect: str) -> sa.Update:
    """``claim_next``'s one statement, built once per board and run with :func:`claim_params`: the
    best claimable row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) claimed, returning the whole row.

    Prebuilt because SQLAlchemy builds, and keys for its cache, a statement constructed anew at
    every call: a claim cost more CPU in building its statement than the database spent running it.

    The best row is the best of each way to be claimable (a state that may be claimed outright, an
    expired claim, a parked job that is due), each found by its own ``LIMIT 1`` on the
    ``(board, state, priority DESC, id)`` index in the claim order: the database reads a few index
    entries per claim however many jobs wait. One search over every claimable state at once could not
    follow the index's order (the state varies), so it read and sorted every waiting job at each
    claim: 1 ms of server CPU with 2,000 jobs waiting, and draining a board grew with the square of its
    backlog. Each search locks the row it found (``SKIP LOCKED``: a row another claimant holds is
    passed over), and the locks of the rows not chosen end with the statement.

    The parked jobs' search is the exception to the claim order: it takes the one due first, on the
    ``(board, state, wake_at, id)`` index (revision 0009), which it reads from its start and stops at
    its first row. In the claim order it read every parked job not yet due, each a row to fetch and
    test (a board with 5,000 jobs parked an hour ahead: 5,000 rows and 0.7-0.9 ms of the server's
    time at each claim, against 0.1 ms with none parked; ``bench/claim_plan.py``); by due time it
    reads one, however many are parked. The job it finds still competes with the others by priority.
    """
    now = sa.bindparam("now", type_=sa.Float)

    def best(case: Claimable) -> sa.ScalarSelect[int]:
        where = [T.c.board == board, T.c.state == case.state]
        if case.when is not None:
            where.append(case.when)
        return (
            sa.select(T.c.id)
            .where(*where)
            .order_by(*case.order)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )

    candidates = [best(case) for case in claimable_cases(now)]
    pick = sa.select(T.c.id).where(T.c.id.in_(candidates)).order_by(*CLAIM_ORDER).limit(1).scalar_subquery()
    values = claim_values(
        sa.bindparam("who", type_=sa.String), sa.bindparam("token", type_=sa.String), 0.0, 0.0, dialect
    )
    values["lease_expires"] = sa.bindparam("lease_expires", type_=sa.Float)
    values["updated_on"] = now
    return T.update().where(T.c.id == pick).values(**values).returning(T)


def claim_params(who: str, token: str, now: float, lease: float) -> dict[str, object]:
    """The parameters of :func:`claim_next_statement` for one claim."""
    return {"who": who, "token": token, "now": now, "lease_expires": now + lease}


def owned_statement(board: str, target: JobState, values: dict[str, object]) -> sa.Update:
    """An UPDATE writing ``values`` to the job's row if its claimant still holds it and it may move to
    ``target`` (parameters ``seq``, ``who``, ``token``; see :func:`owned_by`), built once per board."""
    owned = owned_by(
        board,
        sa.bindparam("seq", type_=sa.Integer),  # type: ignore[arg-type]
        sa.bindparam("who", type_=sa.String),  # type: ignore[arg-type]
        sa.bindparam("token", type_=sa.String),  # type: ignore[arg-type]
        target,
    )
    return T.update().where(owned).values(**values)


def state_values(states: frozenset[JobState]) -> list[str]:
    """``states`` as the column stores them, in a stable order."""
    return sorted(s.value for s in states)
