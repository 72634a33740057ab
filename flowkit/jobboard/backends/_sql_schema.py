"""The SQL job board's table and PostgreSQL's LISTEN/NOTIFY wake-up.

The table is defined here for use at run time, with its own SQLAlchemy ``MetaData`` (a board and the
flows' persistence may live in different databases). It is created by flowkit's alembic migrations
(revisions ``0002`` to ``0009``, beside persistence's tables), which a board runs on connect
(:func:`flowkit.persistence.migrations.ensure`) and ``flowkit db upgrade URL`` runs from a shell: one
database upgraded either way has every flowkit table.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

LOG = logging.getLogger("flowkit.jobboard")

CHANNEL = "flowkit_jobboard"
"""PostgreSQL notification channel; the payload is the board's name."""


def notify(board: str) -> sa.FunctionElement[Any]:
    """The call that wakes ``board``'s waiting boards on PostgreSQL (its ``NOTIFY`` is sent at commit):
    in a ``SELECT`` of its own, or in the ``RETURNING`` of a statement that has a round trip anyway."""
    return sa.func.pg_notify(CHANNEL, board)


metadata = sa.MetaData()

jobs = sa.Table(
    "flowkit_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("board", sa.String(255), nullable=False),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("owner", sa.String(255)),
    sa.Column("lease_token", sa.String(36)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_reason", sa.Text),
    sa.Column("created_on", sa.Float, nullable=False),
    sa.Column("updated_on", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False, comment="the job's JSON record"),
    sa.Column("claim_epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cancel_reason", sa.Text, comment="why a cancel was asked for (NULL: none)"),
    sa.Column("wake_at", sa.Float, comment="a WAITING job is claimable from then (epoch seconds)"),
    sa.Column("awaiting", sa.Text, comment="a WAITING job's awaited events, each between two \\x1f"),
)
# in the claim order (revision 0008): each of a claim's searches reads it in order and stops at its first
# row (see _sql_claims.claim_next_statement)
sa.Index("flowkit_jobs_pick", jobs.c.board, jobs.c.state, jobs.c.priority.desc(), jobs.c.id)
# parked jobs by due time (revision 0009): the claim's search for a due one reads it from its start, and the
# board's next wake-up time is its first entry (see _sql_claims.claim_next_statement)
sa.Index("flowkit_jobs_wake", jobs.c.board, jobs.c.state, jobs.c.wake_at, jobs.c.id)

fleet = sa.Table(
    "flowkit_fleet",
    metadata,
    sa.Column("board", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False, comment="the member's JSON record (flowkit.jobboard.fleet)"),
)
"""Conductors' heartbeats (revision ``0004``): one row per board and member name."""


class Listener(threading.Thread):
    """Calls ``wake()`` whenever a PostgreSQL NOTIFY for ``board`` arrives (a job posted or released)."""

    def __init__(self, engine: sa.Engine, board: str, wake: Callable[[], None]) -> None:
        super().__init__(name=f"flowkit-jobboard-listen-{board}", daemon=True)
        self._engine = engine
        self._board = board
        self._wake = wake
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database went away: wake waiters (they poll) and retry
                LOG.warning("board %r: LISTEN connection failed (%s); retrying", self._board, exc)
                self._wake()
                self._halt.wait(1.0)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        try:
            # the driver's own connection (psycopg2: notifies, poll()), which ships no types
            dbapi: Any = raw.driver_connection
            dbapi.autocommit = True
            with dbapi.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            while not self._halt.is_set():
                ready, _, _ = select.select([dbapi], [], [], 0.5)
                if not ready:
                    continue
                dbapi.poll()
                notes, dbapi.notifies[:] = list(dbapi.notifies), []
                if any(n.payload == self._board for n in notes):
                    self._wake()
        finally:
            raw.invalidate()
