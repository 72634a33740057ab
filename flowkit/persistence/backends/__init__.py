"""Persistence backends, chosen by URL: ``fetch("sqlite:///flows.db")``.

=================================  ===================================================================
``memory://``                      rows in this process (tests, the quickstart)
``sqlite:///relative/path.db``     a SQLite file (the embedded default); ``sqlite:////abs/path.db``
``postgresql://user@host/dbname``  PostgreSQL through psycopg2 (``postgres://`` too; ``flowkit[postgres]``)
=================================  ===================================================================

SQL URLs are read by :mod:`flowkit.sql.urls` (the job board's SQL backend reads them the same way: the
same schemes, ``+driver`` kept as given) and their engines come from :mod:`flowkit.sql.engines`, one per
database per process. The SQL backends import SQLAlchemy when they are fetched, not when flowkit is
imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit import extras
from flowkit.exceptions import UnknownBackendError
from flowkit.persistence.backends.base import Backend, Connection
from flowkit.persistence.rows import Serializer

if TYPE_CHECKING:
    from flowkit.persistence.backoff import Backoff

SCHEMES = ("memory", "sqlite", "postgresql", "postgres")

__all__ = ["SCHEMES", "Backend", "Connection", "fetch"]


def fetch(
    url: str,
    *,
    serializer: Serializer | None = None,
    backoff: Backoff | None = None,
    durability: str | None = None,
) -> Backend:
    """The backend for ``url``.

    ``serializer`` replaces JSON for stored values; ``backoff`` bounds how long a SQL backend retries
    a database that went away (default 30 s, or ``?retry_timeout=SECONDS`` in the URL) before raising
    StorageError; ``durability`` is ``"flow"`` (default) or ``"atom"`` (or ``?durability=`` in the URL):
    see :class:`~flowkit.persistence.backends.sqlalchemy.SQLAlchemyBackend`.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from flowkit.persistence.backends.memory import MemoryBackend

        return MemoryBackend(url, serializer)
    if scheme in ("sqlite", "postgresql", "postgres"):
        if scheme != "sqlite":
            extras.require("postgres", "the PostgreSQL persistence backend")
        from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

        return SQLAlchemyBackend(url, serializer, backoff=backoff, durability=durability)
    from flowkit.sql.urls import hide_password

    raise UnknownBackendError(hide_password(url), [f"{s}://" for s in SCHEMES])
