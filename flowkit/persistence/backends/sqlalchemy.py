"""``sqlite:///path`` and ``postgresql://...``: SQLAlchemy Core on one pooled engine per backend.

Choices, and why:

- The URL is parsed (:class:`SQLOptions`, through :mod:`flowkit.sql.urls`) and the engine made
  (:mod:`flowkit.sql.engines`) by the same code as the SQL job board's: the same schemes, the same
  SQLite settings (WAL, ``synchronous=FULL``, busy timeout, foreign keys, flowkit's own ``BEGIN``), and
  one engine for both when they use the same database.
- The engine's recorder writes each atom transition as ONE ``UPDATE`` on an autocommit connection that
  it keeps for the run: one round trip and one commit per transition (the serial engine's pairs, a
  SUCCESS and the next RUNNING, are one transaction: ``write_rows``, on PostgreSQL one statement).
  With ``durability="flow"`` (the default) that connection's commits are flushed to disk with the
  next flow transition that is a durable point (on a SQLite file, or in a fenced flow, the flow's start
  is none: ``Backend.start_is_durable``) instead of each on its own (see :class:`SQLAlchemyBackend`),
  which is what makes a transition cost tens of microseconds instead of an fsync. The flow transition
  is a durable transaction on the same connection (:meth:`SQLAlchemyConnection.run_durable`): a flush
  covers its own session's commits.
  On a SQLite file in WAL mode that transaction commits like the others and then flushes the WAL file
  itself, as a ``synchronous=FULL`` commit would: a ``PRAGMA synchronous`` switch around it would
  expire the connection's prepared statements (each compiled again at its next use). For the same
  reason a backend keeps its relaxed connections when a recorder gives them back (see
  :meth:`SQLAlchemyBackend.park`): the next run's recorder takes one as it is (SQLite: at
  ``synchronous=NORMAL`` with its statements still prepared; PostgreSQL: with ``synchronous_commit``
  off), instead of a pooled connection it would relax (and, giving it back, make durable again) with a
  statement each time.
- Connection errors (``OperationalError``, a dropped connection) are retried with bounded exponential
  backoff (:class:`~flowkit.persistence.backoff.Backoff`); a whole unit of work is retried, never half
  of one. Past the bound the caller gets a :class:`~flowkit.exceptions.StorageError`.

This module holds the backend; its parts live beside it, one concept each, and its public names are
re-exported here: the URL's options (``_sql_options``), the connection and its units of work and row
primitives (``_sql_connection``), the relaxed and durable commits (``_sql_durability``), the kept
connections (``_sql_parking``), the statements built once (``_sql_statements``; the row updates'
prepared ones: ``_prepared``), the retry policy's errors (``_sql_errors``).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from flowkit.exceptions import StorageError
from flowkit.persistence.backends._prepared import PreparedUpdates
from flowkit.persistence.backends._sql_connection import LOG, SESSIONS, SQLAlchemyConnection
from flowkit.persistence.backends._sql_durability import (
    DURABLE_COMMIT,
    RELAXED,
    durable_transaction,
    wal_file_of,
)
from flowkit.persistence.backends._sql_options import DURABILITY, SQLOptions
from flowkit.persistence.backends._sql_parking import PARKED_MAX, Parking
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.backoff import Backoff
from flowkit.persistence.models import LogBook, utcnow
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, Serializer
from flowkit.sql import engines

__all__ = [
    "DURABILITY",
    "LOG",
    "PARKED_MAX",
    "SESSIONS",
    "SQLAlchemyBackend",
    "SQLAlchemyConnection",
    "SQLOptions",
]


class SQLAlchemyBackend(Backend):
    """A SQLite file or a PostgreSQL database; one pooled engine shared by all its connections.

    ``backoff`` bounds the retrying of connection errors (URL: ``?retry_timeout=SECONDS``).
    ``durability`` (URL: ``?durability=atom``) says when a recorded atom transition is on disk:

    - ``"flow"`` (default): an atom transition is committed before the engine acts on it, so a killed
      engine loses nothing; it is flushed to disk with the next flow transition (on SQLite, the next
      after the flow's start: a crash that loses the start loses the engine too), which is written with
      a durable commit on the same connection (SQLite ``synchronous=FULL``, PostgreSQL
      ``synchronous_commit=on``): so everything is on disk when ``run()`` returns or the flow
      suspends. A database server crash (PostgreSQL, at most ~0.6 s of commits) loses the latest atom
      transitions, but the engine's recorder, reconnected, writes them again durably (it notices the
      new :attr:`~flowkit.persistence.backends.base.Connection.session`). Only a power cut of the
      engine's machine as well (SQLite, or both) loses them for good (on SQLite with the run's set-up
      and start, when no durable point came after them: the database then holds the flow as it was
      before the run), never anything flushed before: those atoms run again on resume, which the
      at-least-once rule already allows, under the same idempotency key.
    - ``"atom"``: every atom transition is flushed to disk before the engine acts on it (an fsync per
      transition: several times slower per task).
    """

    def __init__(
        self,
        url: str,
        serializer: Serializer | None = None,
        *,
        backoff: Backoff | None = None,
        durability: str | None = None,
    ) -> None:
        super().__init__(url, serializer)
        options = SQLOptions.from_url(url)
        if durability is not None:  # the argument wins over the URL's query
            if durability not in DURABILITY:
                raise StorageError(
                    f"persistence URL {options.database.display!r}: durability must be one of "
                    f"{', '.join(DURABILITY)}, not {durability!r}"
                )
            options = dataclasses.replace(options, durability=durability)
        self.options = options
        self.durability = options.durability
        self.sa_url = options.database.url
        timeout = options.retry_timeout
        self.backoff = backoff or (Backoff(timeout=timeout) if timeout is not None else Backoff())
        self._lease = engines.acquire(options.database)
        self.engine = self._lease.engine
        self.relaxed = RELAXED.get(self.engine.dialect.name) if self.durability == "flow" else None
        self.durable_transaction = durable_transaction(self.engine.dialect.name, self.relaxed is not None)
        # PostgreSQL: what makes one statement's own transaction durable, sent in the same message
        self.durable_prefix = f"{DURABLE_COMMIT}; " if self.relaxed is not None else ""
        # run_setup's (relax, restore) around its transaction: a SQLite commit at synchronous=NORMAL is
        # lost only with the machine, and the engine with it
        self.relaxed_setup = self.relaxed if self.engine.dialect.name == "sqlite" else None
        self.start_is_durable = self.relaxed_setup is None  # (the same reason: see Backend)
        # the recorder's relaxed connection is kept between runs (park): its set-up runs on it (one
        # database connection per run, its statements still prepared; on PostgreSQL the fenced set-up's
        # relaxed commit is that session's own)
        self.setup_on_writer = self.relaxed is not None
        self.updates = PreparedUpdates(self.engine.dialect)
        """Every row update (an atom transition is one): prepared, on the DB-API cursor (see _prepared)."""
        self.schema_checked = False
        self._parking = Parking(self.relaxed[1] if self.relaxed is not None else None)
        self._wal: str | None = None  # wal_file's answer, once _wal_known
        self._wal_known = False

    def wal_file(self, conn: sa.Connection) -> str | None:
        """The SQLite database's write-ahead log file (``conn``'s database's), or None when it has none
        (not in WAL mode, in memory): asked once.

        Why: a durable point on the recorder's relaxed connection commits at ``synchronous=NORMAL``
        and then flushes this file itself, instead of switching the connection to ``FULL`` and back
        around the commit: every ``PRAGMA synchronous`` expires the connection's prepared statements
        (each statement it runs next is compiled again: ~30 per run, ~1M instructions).
        """
        if not self._wal_known:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            self._wal = wal_file_of(driver)
            self._wal_known = True
        return self._wal

    def park(self, conn: sa.Connection) -> bool:
        """Keep ``conn``, a relaxed connection a recorder is done with, for the next recorder
        (:meth:`unpark`); False when enough are kept already or the engine is released (then the
        caller gives it back). Why: see :mod:`._sql_parking`."""
        return not self._lease.released and self._parking.park(conn)

    def unpark(self) -> sa.Connection | None:
        """A connection :meth:`park` kept (relaxed, autocommit), or None (see :meth:`Parking.unpark`)."""
        return self._parking.unpark()

    @property
    def display_url(self) -> str:
        return self.options.database.display

    def get_connection(self, autocommit: bool = False) -> SQLAlchemyConnection:
        if self._lease.released:  # used again after close(), as a disposed engine allows: hold it again
            self._lease = engines.acquire(self.options.database)
            self.engine = self._lease.engine
        return SQLAlchemyConnection(self, autocommit)

    def close(self) -> None:
        """Release the engine: disposed unless a board or another backend on the database shares it;
        the connections :meth:`park` kept are made durable again and given back to its pool first."""
        self._parking.close()
        self._lease.release()

    def save_logbook_in(self, conn: sa.Connection, book: LogBook) -> bool:
        """Save ``book`` as :meth:`Connection.save_logbook` does, inside the caller's transaction on
        ``conn``, a connection of this backend's PostgreSQL engine (False, nothing done, otherwise).

        For the SQL job board on the same database: a job and its logbook posted in one transaction,
        one commit (a disk flush each) instead of two.
        """
        if conn.engine is not self.engine or conn.dialect.name != "postgresql":
            return False
        book.updated_at = utcnow()
        codec = self.codec
        rows = {
            LOGBOOKS: [codec.logbook_row(book)],
            FLOWS: [codec.flow_row(fd) for fd in book],
            ATOMS: [codec.atom_row(ad) for fd in book for ad in fd],
        }
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()  # the caller's transaction: statements of the DB-API connection are in it
        saved = [(table, found) for table, found in rows.items() if found]
        try:
            for k, (table, found) in enumerate(saved):
                # prepared (see PreparedUpdates.upsert_columns); each but the last held and sent in the
                # last one's message: one round trip for them all, none of their results being read
                self.updates.upsert(conn, cursor, table, found, held=k < len(saved) - 1)
        except BaseException:
            self.updates.drop_held(conn)  # (never left for the connection's next user to send)
            raise
        finally:
            cursor.close()
        return True
