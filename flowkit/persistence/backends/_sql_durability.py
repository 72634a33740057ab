"""How the SQL backend's relaxed connections commit, and how their durable points reach the disk.

At ``durability="flow"`` the recorder's autocommit connection commits atom transitions without a disk
flush (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit`` off); a flow transition is one
durable transaction on that same connection, whose flush covers every commit the session made before
it. On a SQLite file in WAL mode that transaction commits like the others and then flushes the WAL
file itself (:func:`sync_file`), as a ``synchronous=FULL`` commit would: a ``PRAGMA synchronous``
switch around it would expire the connection's prepared statements.
"""

from __future__ import annotations

import os
from typing import Any

from flowkit.exceptions import StorageError

# (relax, restore): what an autocommit connection runs at checkout and before it goes back to the pool
RELAXED = {
    "sqlite": ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"),
    "postgresql": ("SET synchronous_commit TO off", "RESET synchronous_commit"),
}


DURABLE_COMMIT = "SET LOCAL synchronous_commit TO on"
"""PostgreSQL: this transaction's commit waits for its WAL flush, on a session that has it off. Also sent
in front of one statement, in the same message: a message of several statements is one transaction."""


def durable_transaction(dialect: str, relaxed: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(open, close): the statements around one durable transaction on an autocommit connection.

    PostgreSQL: ``SET LOCAL`` turns synchronous commit on for that transaction only; its commit flushes
    the WAL up to its own record, which lies after every commit this session made before. SQLite: a
    ``synchronous=FULL`` commit syncs the WAL file, with the frames of every commit before it.
    """
    if dialect == "postgresql":
        return ("BEGIN; " + DURABLE_COMMIT if relaxed else "BEGIN",), ("COMMIT",)
    relax, restore = RELAXED["sqlite"]
    if relaxed:
        return (restore, "BEGIN IMMEDIATE"), ("COMMIT", relax)
    return ("BEGIN IMMEDIATE",), ("COMMIT",)


def wal_file_of(driver: Any) -> str | None:
    """The write-ahead log file of the SQLite database of ``driver`` (a ``sqlite3`` connection), or
    None when it has none (not in WAL mode, in memory)."""
    mode = str(driver.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    files = [row[2] for row in driver.execute("PRAGMA database_list") if row[1] == "main"]
    path = files[0] if files else ""
    return f"{path}-wal" if mode == "wal" and path else None


FLUSH = getattr(os, "fdatasync", os.fsync)  # (what SQLite syncs with; macOS has no fdatasync)


def sync_file(path: str, url: str) -> None:
    """Flush ``path`` (a SQLite WAL file) to disk, as a ``synchronous=FULL`` commit does after writing
    its frames (fsync is per file: it covers what every connection wrote to it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            FLUSH(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{url}: cannot flush its write-ahead log {path} to disk: {exc}") from exc
