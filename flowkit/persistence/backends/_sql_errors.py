"""Which SQLAlchemy errors the SQL backend retries, and the StorageError it reports for the others.

Why: a connection error (``OperationalError``, a dropped connection) is retried with bounded backoff,
a whole unit of work at a time; an error that waiting will not fix (a missing table, a refused login)
is reported at once, naming the database.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from flowkit.exceptions import SchemaError, StorageError

# Operational errors that waiting will not fix: report them at once instead of retrying.
FATAL = (
    "no such table",
    "no such column",
    "does not exist",
    "authentication failed",
    "unable to open database file",
    "readonly database",
    "permission denied",
)


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection error that a new connection, after a wait, may not meet."""
    if isinstance(exc, sa_exc.DisconnectionError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        text = str(exc.orig).lower()
        return not any(marker in text for marker in FATAL)
    return False


def translate(exc: sa_exc.SQLAlchemyError, url: str) -> StorageError:
    """The StorageError (SchemaError for a missing schema) the caller gets for ``exc`` on ``url``."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    if "no such table" in text or getattr(getattr(exc, "orig", None), "pgcode", None) == "42P01":
        return SchemaError(f"{url} has no flowkit schema (run `flowkit db upgrade URL`): {text}")
    if isinstance(exc, sa_exc.IntegrityError):
        return StorageError(f"{url} refused the write (a missing parent or a duplicate name?): {text}")
    return StorageError(f"{url}: {type(exc).__name__}: {text}")
