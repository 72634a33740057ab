"""Persistence backends, chosen by URL: ``fetch("sqlite:///flows.db")``.

=================================  ===================================================================
``memory://``                      rows in this process (tests, the quickstart)
``sqlite:///relative/path.db``     a SQLite file (the embedded default); ``sqlite:////abs/path.db``
``postgresql://user@host/dbname``  PostgreSQL through psycopg2 (``postgres://`` too; ``flowkit[postgres]``)
``dir:///abs/path``                one JSON file per logbook in a directory (``file://`` too)
=================================  ===================================================================

SQL URLs are read by :mod:`flowkit.sql.urls` (the job board's SQL backend reads them the same way: the
same schemes, ``+driver`` kept as given) and their engines come from :mod:`flowkit.sql.engines`, one per
database per process. The SQL backends import SQLAlchemy when they are fetched, not when flowkit is
imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowkit import extras
from flowkit.exceptions import InvalidFormat, UnknownBackendError
from flowkit.persistence.backends.base import Backend, Connection
from flowkit.persistence.rows import Serializer

if TYPE_CHECKING:
    from flowkit.persistence.backoff import Backoff

SCHEMES = ("memory", "sqlite", "postgresql", "postgres", "dir", "file")

__all__ = ["SCHEMES", "Backend", "Connection", "fetch"]


def fetch(
    url: str | Mapping[str, Any],
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

    ``url`` may also be a settings dict in TaskFlow's form, ``{"connection": URL}`` (for ``dir://`` /
    ``file://`` a ``"path"`` entry names the directory), so TaskFlow code runs unchanged.
    """
    if isinstance(url, Mapping):
        url = _url_of(url)
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from flowkit.persistence.backends.memory import MemoryBackend

        return MemoryBackend(url, serializer)
    if scheme in ("sqlite", "postgresql", "postgres"):
        if scheme != "sqlite":
            extras.require("postgres", "the PostgreSQL persistence backend")
        from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

        return SQLAlchemyBackend(url, serializer, backoff=backoff, durability=durability)
    if scheme in ("dir", "file"):
        from flowkit.persistence.backends.dir import DirBackend

        return DirBackend(url, serializer)
    from flowkit.sql.urls import hide_password

    raise UnknownBackendError(hide_password(url), [f"{s}://" for s in SCHEMES])


def _url_of(conf: Mapping[str, Any]) -> str:
    """The URL a TaskFlow-style settings dict means."""
    url = conf.get("connection")
    if not isinstance(url, str) or not url:
        raise InvalidFormat(f"persistence settings need a 'connection' URL string, got {dict(conf)!r}")
    if ":" not in url and url.lower() in SCHEMES:
        url += "://"  # TaskFlow's {"connection": "memory"}
    path = conf.get("path")
    if path is not None and url.split(":", 1)[0].lower() in ("dir", "file"):
        return f"dir://{path}"
    return url
