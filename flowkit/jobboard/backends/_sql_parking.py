"""The SQL board's statements for parked jobs: a WAITING row holds ``wake_at`` (claimable from then on,
see ``_sql_claims.available``) and ``awaiting`` (its events, each between two separators).

Apart from the board, like ``_sql_claims``: each is one SQL expression with no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from flowkit.jobboard import parking
from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.states import JobState

T = schema.jobs
S = JobState


def park(wake_at: float | None, events: Sequence[str]) -> sa.Update:
    """What a park writes (the board adds which row it may be: the owner's CLAIMED one)."""
    return T.update().values(
        state=S.WAITING.value,
        owner=None,
        lease_token=None,
        lease_expires=None,
        wake_at=wake_at,
        awaiting=parking.awaiting_text(events),
        attempts=sa.case((T.c.attempts > 0, T.c.attempts - 1), else_=0),  # a park is no failed attempt
        updated_on=time.time(),
    )


def wake(board: str, names: Sequence[str], now: float) -> sa.Update:
    """Make the WAITING rows of ``board`` awaiting any of ``names`` claimable ``now``."""
    matches = [T.c.awaiting.like(parking.like_pattern(n), escape="\\") for n in names]
    return (
        T.update()
        .where(T.c.board == board, T.c.state == S.WAITING, sa.or_(*matches))
        .values(wake_at=now, updated_on=now)
    )


def next_wake(board: str) -> sa.Select[Any]:
    """The earliest wake-up time of a WAITING row of ``board``."""
    return sa.select(sa.func.min(T.c.wake_at)).where(T.c.board == board, T.c.state == S.WAITING)
