"""The relaxed connections a SQL backend keeps between runs, out of its engine's pool.

Why: the pool's other users expect durable commits, so a relaxed connection given back to the pool
must first be made durable again, and the next recorder's relaxed again. On SQLite each ``PRAGMA
synchronous`` expires every prepared statement of the connection (each run compiled its set-up and
update statements again); on PostgreSQL the two ``SET`` statements are two round trips per flow, paid
on every job by a conductor running one-task jobs back to back. A kept connection is never handed to
anything but a relaxed recorder's connection, so no durable commit ever runs on it.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.sql import engines

PARKED_MAX = 2
"""Relaxed connections a backend keeps between runs: one per engine that runs at a time is what makes
the next run's set-up free; more would sit idle."""


class Parking:
    """The kept connections of one backend, each with the process that kept it and when."""

    def __init__(self, restore: str | None) -> None:
        self.restore = restore
        """What makes a relaxed connection durable again (None: the backend relaxes none)."""
        self.kept: list[tuple[int, float, sa.Connection]] = []  # (pid, parked at, connection)

    def park(self, conn: sa.Connection) -> bool:
        """Keep ``conn``; False when enough are kept already (then the caller gives it back)."""
        if len(self.kept) >= PARKED_MAX:
            return False
        self.kept.append((os.getpid(), time.monotonic(), conn))
        return True

    def unpark(self) -> sa.Connection | None:
        """A kept connection (relaxed, autocommit), or None. One inherited from the parent of a forked
        process is left alone: that process's connection, not this one's. A PostgreSQL one kept for
        the pool's ping interval or longer goes back to the pool, durable again (its next checkout
        pings it: the server may have dropped it meanwhile)."""
        pid, now = os.getpid(), time.monotonic()
        while self.kept:
            try:
                owner, since, conn = self.kept.pop()
            except IndexError:  # another thread took the last one
                return None
            if owner != pid:
                continue
            if conn.dialect.name == "postgresql" and now - since >= engines.PING_AFTER:
                self.give_back(conn)
                continue
            return conn
        return None

    def give_back(self, conn: sa.Connection) -> None:
        """A kept relaxed connection back to the pool, durable again (dropped if that fails)."""
        try:
            if self.restore is not None:
                conn.exec_driver_sql(self.restore)  # the pool's other users expect durability
            conn.close()
        except sa_exc.SQLAlchemyError:
            try:
                conn.invalidate()
                conn.close()
            except sa_exc.SQLAlchemyError:  # a dead connection may fail to close; the pool drops it
                pass

    def close(self) -> None:
        """Every connection this process kept back to the pool, durable again."""
        kept, self.kept = self.kept, []
        pid = os.getpid()
        for owner, _, conn in kept:
            if owner == pid:
                self.give_back(conn)
