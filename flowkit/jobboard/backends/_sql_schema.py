"""The SQL job board's table, database engines, and PostgreSQL's LISTEN/NOTIFY wake-up.

The table is defined here for use at run time, with its own SQLAlchemy ``MetaData`` (a board and the
flows' persistence may live in different databases). It is created by flowkit's alembic migrations
(revisions ``0002`` and ``0003``, beside persistence's tables), which a board runs on connect
(:func:`upgrade`) and ``flowkit db upgrade URL`` runs from a shell: one database upgraded either way
has every flowkit table.
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
    sa.Index("flowkit_jobs_pick", "board", "state", "priority", "id"),
)

_memory: dict[str, tuple[sa.Engine, threading.RLock]] = {}
_memory_lock = threading.Lock()


def make_engine(url: str) -> tuple[sa.Engine, threading.RLock | None]:
    """An engine for ``url``, and the lock that must guard it (``memory://`` only, else None).

    ``memory://NAME`` is one SQLite database in this process per NAME, on one connection shared by
    every board on it: the lock keeps their transactions from interleaving on that connection.
    """
    if url.startswith("memory://"):
        from sqlalchemy.pool import StaticPool

        key = url[len("memory://") :]
        with _memory_lock:
            if key not in _memory:
                engine = sa.create_engine(
                    "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
                _memory[key] = (engine, threading.RLock())
            return _memory[key]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers (listings) do not block the writer (claims) across conductor processes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine, None
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_pre_ping=True), None


def upgrade(url: str, engine: sa.Engine) -> None:
    """Migrate the board's database to flowkit's newest schema revision (idempotent).

    Costs one query when the database is there already. Otherwise the migrations run through the
    persistence backend for ``url``, which serializes concurrent upgrades (conductors starting
    together); a ``memory://`` database lives in this process only, so it is migrated directly.
    Raises SQLAlchemy's ``DBAPIError`` or :class:`~flowkit.exceptions.StorageError`.
    """
    from flowkit.persistence import migrations

    with engine.connect() as conn:
        if migrations.current(conn) == migrations.head():
            return
        if url.startswith("memory://"):
            migrations.upgrade(conn)
            conn.commit()
            return
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend
    from flowkit.persistence.backoff import NO_RETRY

    backend = SQLAlchemyBackend(url, backoff=NO_RETRY)
    try:
        with backend.get_connection() as schema:
            schema.upgrade()
    finally:
        backend.close()


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
