"""Events for durable waits, kept in persistence: sent once, seen by every flow that waits for them.

``send_event(backend, name, payload)`` appends an event; a :class:`flowkit.WaitForEvent` waiting for
``name`` (now, or later: an event sent before a flow reaches its wait is kept for it) takes the
**latest** event of that name, and its payload becomes the atom's result. Events are not consumed:
every flow waiting on a name is woken by one event, and an event stays until
:func:`prune_events` removes it (``flowkit events prune``); name events per occurrence
(``"approve-{cluster_id}"``) so that an old one is never taken for a new wait.

Kept in the ``flowkit_events`` table on SQLite and PostgreSQL (alembic revision ``0005``), in the
backend object for ``memory://`` and in ``events.jsonl`` for ``dir://``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from flowkit.exceptions import StorageError
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.backends.dir import DirBackend
from flowkit.persistence.backends.memory import MemoryBackend

MAX_NAME = 255


@dataclasses.dataclass(frozen=True)
class Event:
    """One event as stored: its position in the log (``id``), name, payload and when it was sent."""

    id: int
    name: str
    payload: Any
    sent_at: float


def check_name(name: object) -> str:
    """``name`` if it can name an event; StorageError saying why not otherwise."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\x00" in name:
        raise StorageError(
            f"an event name must be a non-empty str of at most {MAX_NAME} characters, got {name!r}"
        )
    return name


def send_event(backend: Backend, name: str, payload: Any = None) -> Event:
    """Store an event durably (it is on disk when this returns) and return it."""
    check_name(name)
    text = backend.codec.dump(payload, f"event {name}", "the payload")
    now = time.time()
    if isinstance(backend, DirBackend):
        return _dir_send(backend, name, text, payload, now)
    if isinstance(backend, MemoryBackend):
        with backend.lock:
            log = _memory_log(backend)
            event = Event(len(log) + 1, name, payload, now)
            log.append((event.id, name, text, now))
            return event
    table = _table()

    def insert(conn: sa.Connection) -> int:
        key = conn.execute(table.insert().values(name=name, payload=text, sent_at=now)).inserted_primary_key
        assert key is not None
        return int(key[0])

    return Event(_sql(backend, insert, durable=True), name, payload, now)


def latest_events(backend: Backend, names: Collection[str]) -> dict[str, Event]:
    """The latest event of each name in ``names`` that has been sent (names never sent are absent)."""
    wanted = set(names)
    if not wanted:
        return {}
    if isinstance(backend, DirBackend):
        rows = [r for r in _dir_rows(backend) if r[1] in wanted]
    elif isinstance(backend, MemoryBackend):
        with backend.lock:
            rows = [r for r in _memory_log(backend) if r[1] in wanted]
    else:
        table = _table()
        latest = (
            sa.select(sa.func.max(table.c.id)).where(table.c.name.in_(sorted(wanted))).group_by(table.c.name)
        )
        query = sa.select(table.c.id, table.c.name, table.c.payload, table.c.sent_at).where(
            table.c.id.in_(latest)
        )
        rows = [tuple(r) for r in _sql(backend, lambda conn: conn.execute(query).all())]
    found: dict[str, Event] = {}
    for ident, name, text, sent_at in sorted(rows):
        found[name] = Event(ident, name, backend.codec.load(text, f"event {name}", "the payload"), sent_at)
    return found


def prune_events(backend: Backend, older_than: float) -> int:
    """Delete the events sent more than ``older_than`` seconds ago; return how many went."""
    cutoff = time.time() - older_than
    if isinstance(backend, DirBackend):
        return _dir_prune(backend, cutoff)
    if isinstance(backend, MemoryBackend):
        with backend.lock:
            log = _memory_log(backend)
            kept = [r for r in log if r[3] >= cutoff]
            gone = len(log) - len(kept)
            log[:] = kept
            return gone
    table = _table()
    stmt = table.delete().where(table.c.sent_at < cutoff)
    return int(_sql(backend, lambda conn: conn.execute(stmt).rowcount, True))


# -- backends ---------------------------------------------------------------------------------------

_Row = tuple[int, str, "str | None", float]


def _memory_log(backend: MemoryBackend) -> list[_Row]:
    return backend.events


def _table() -> sa.Table:
    from flowkit.persistence.backends._tables import events

    return events


def _sql(backend: Backend, fn: Any, durable: bool = False) -> Any:
    """Run ``fn(sa_connection)`` in one transaction of the backend's, with its retrying."""
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyConnection

    with backend.get_connection() as conn:
        if not isinstance(conn, SQLAlchemyConnection):
            raise StorageError(f"persistence {backend.display_url} keeps no events")
        run = conn.run_durable if durable else conn.run
        return run(lambda: fn(conn._checkout()))


def _dir_file(backend: DirBackend) -> str:
    return str(backend.path / "events.jsonl")


class _DirLock:
    """The directory's lock file, held exclusively (the same one its logbook writes take)."""

    def __init__(self, backend: DirBackend) -> None:
        self.backend = backend
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.backend.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.backend.path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot use directory {self.backend.path}: {exc}") from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _dir_rows(backend: DirBackend) -> list[_Row]:
    try:
        with open(_dir_file(backend), encoding="utf-8") as f:
            return [tuple(json.loads(line)) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {_dir_file(backend)}: {exc}") from exc


def _dir_send(backend: DirBackend, name: str, text: str | None, payload: Any, now: float) -> Event:
    with backend.lock, _DirLock(backend):
        rows = _dir_rows(backend)
        ident = rows[-1][0] + 1 if rows else 1
        try:
            with open(_dir_file(backend), "a", encoding="utf-8") as f:
                f.write(json.dumps([ident, name, text, now]) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write {_dir_file(backend)}: {exc}") from exc
    return Event(ident, name, payload, now)


def _dir_prune(backend: DirBackend, cutoff: float) -> int:
    with backend.lock, _DirLock(backend):
        rows = _dir_rows(backend)
        kept = [r for r in rows if r[3] >= cutoff]
        tmp = _dir_file(backend) + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(list(r)) + "\n" for r in kept)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, _dir_file(backend))
        except OSError as exc:
            raise StorageError(f"cannot write {_dir_file(backend)}: {exc}") from exc
        return len(rows) - len(kept)
