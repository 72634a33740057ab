"""The conditions and values of the SQL board's claim statements: which rows may be claimed, what a
claim writes (its lease and fencing token), and which rows a claimant still owns.

Apart from the board because these decide who holds a job, and each is one SQL expression with no
I/O: the board composes them into its statements and runs them in its transactions.
"""

from __future__ import annotations

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.states import JobState, job_sources

T = schema.jobs
S = JobState


def available(board: str, now: float) -> sa.ColumnElement[bool]:
    """Rows of ``board`` that may be claimed now. A lease that ran out ended its claim (CLAIMED ->
    UNCLAIMED), though the row still says CLAIMED until someone claims it again; a WAITING (parked)
    job is claimable from its ``wake_at`` on (an event sets it to the time it came)."""
    return sa.and_(
        T.c.board == board,
        sa.or_(
            T.c.state.in_(state_values(job_sources(S.CLAIMED) - {S.WAITING})),
            sa.and_(T.c.state == S.CLAIMED, T.c.lease_expires < now),
            sa.and_(T.c.state == S.WAITING, T.c.wake_at <= now),
        ),
    )


def claim_values(who: str, token: str, now: float, lease: float, dialect: str) -> dict[str, object]:
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


def state_values(states: frozenset[JobState]) -> list[str]:
    """``states`` as the column stores them, in a stable order."""
    return sorted(s.value for s in states)
