"""What a SQL persistence URL says: the database, and the backend's options from its query."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowkit.exceptions import StorageError
from flowkit.sql import urls
from flowkit.sql.urls import Database

DURABILITY = ("flow", "atom")
"""The durability levels (see :class:`~flowkit.persistence.backends.sqlalchemy.SQLAlchemyBackend`)."""


@dataclasses.dataclass(frozen=True)
class SQLOptions:
    """What a persistence URL says: the database, and this backend's options from its query."""

    database: Database
    durability: str = "flow"
    retry_timeout: float | None = None
    """Seconds to retry a database that went away (None: :class:`Backoff`'s default)."""

    QUERY: ClassVar[tuple[str, ...]] = ("durability", "retry_timeout")

    @classmethod
    def from_url(cls, url: str) -> SQLOptions:
        """Parse ``url``; a URL flowkit cannot use raises :class:`StorageError` naming it."""
        database, query = urls.parse(url, cls.QUERY, StorageError, "persistence")
        bad = urls.complaint(url, StorageError, "persistence")
        durability = query.get("durability", "flow")
        if durability not in DURABILITY:
            raise bad(f"durability must be one of {', '.join(DURABILITY)}, not {durability!r}")
        timeout = urls.number(query, "retry_timeout", float, bad, zero=True)
        return cls(database, durability, timeout)
