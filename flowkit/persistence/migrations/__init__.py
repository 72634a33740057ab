"""flowkit's schema migrations (alembic), shipped inside the package.

Why here and not only in the top-level ``alembic/`` directory: an installed flowkit (a wheel, a
container image) has no checkout, yet ``conn.upgrade()`` and ``flowkit db upgrade URL`` must be able to
migrate a database. So the revisions live in ``flowkit/persistence/migrations/versions`` (package data)
and this package's ``env.py`` runs them; the checkout's ``alembic.ini`` + ``alembic/`` are the developer
entry point (``alembic revision``, ``alembic -x url=... upgrade head``) and use the same revisions.

One tree for every flowkit table: persistence's and the SQL job board's (revisions ``0002`` to ``0009``),
so one upgraded database has them all. Persistence (``conn.upgrade()``) and the board (on connect,
:func:`ensure`) both upgrade through :func:`upgrade_engine`, on an engine from :mod:`flowkit.sql.engines`.

The version table is ``flowkit_alembic_version``, so flowkit can share a database with an application
that has its own alembic history. On PostgreSQL an advisory lock serializes concurrent upgrades.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from flowkit.exceptions import SchemaError
from flowkit.sql import engines, urls
from flowkit.sql.engines import WRITE_LOCK

HERE = Path(__file__).resolve().parent
VERSIONS = HERE / "versions"
VERSION_TABLE = "flowkit_alembic_version"
_PG_LOCK_KEY = 0x666C6F776B6974  # "flowkit": one key for every flowkit upgrade on a server
_LOCK = threading.Lock()


def config(connection: sa.Connection | None = None) -> Config:
    """An alembic config for the shipped migrations, optionally bound to an open connection."""
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(VERSIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: sa.Connection) -> None:
    """Migrate the database behind ``connection`` to the newest revision (idempotent)."""
    with _LOCK:  # alembic keeps the running migration in module globals: one at a time per process
        command.upgrade(config(connection), "head")


def upgrade_engine(engine: sa.Engine) -> None:
    """Migrate ``engine``'s database to the newest revision (idempotent), serialized across processes.

    SQLite: the migration runs in a ``BEGIN IMMEDIATE`` transaction (the write lock, taken before
    reading the version); PostgreSQL: under an advisory lock (see :func:`run_env`).
    """
    with engine.connect().execution_options(**{WRITE_LOCK: True}) as conn:
        upgrade(conn)
        conn.commit()


def ensure(engine: sa.Engine) -> None:
    """:func:`upgrade_engine` unless the database is at the newest revision already (one query then)."""
    with engine.connect() as conn:
        if current(conn) == head():
            return
    upgrade_engine(engine)


@functools.cache
def head() -> str:
    """The newest revision this flowkit knows."""
    found = ScriptDirectory.from_config(config()).get_current_head()
    assert found is not None, "flowkit ships at least one migration"
    return found


def current(connection: sa.Connection) -> str | None:
    """The revision the database is at; None when flowkit's schema was never created there."""
    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def run_env() -> None:
    """The body of ``env.py``: run the migrations on the given connection, or on ``-x url=...``."""
    from alembic import context

    cfg = context.config
    connection = cfg.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or cfg.get_main_option("sqlalchemy.url")
        or os.environ.get("FLOWKIT_DB_URL")
    )
    if not url:
        raise SystemExit("no database: pass -x url=URL, or set FLOWKIT_DB_URL")
    database, _ = urls.parse(url, (), SchemaError, "migrations")
    if context.is_offline_mode():
        context.configure(url=database.url, literal_binds=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    lease = engines.acquire(database)
    try:
        with lease.engine.connect().execution_options(**{WRITE_LOCK: True}) as conn:
            _migrate(conn)
            conn.commit()
    finally:
        lease.release()


def _migrate(connection: sa.Connection) -> None:
    from alembic import context

    context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()
