"""``memory://``: rows in dicts, for tests and the quickstart; gone when the process ends.

It stores the same encoded rows as the SQL backends (values go through the serializer), so a value
that a database would refuse is refused here too, and what is read back is a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

from flowkit.exceptions import StorageError
from flowkit.persistence.backends.base import Backend, Connection
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, ORDER_BY, PARENT, TABLES, Row, Serializer

T = TypeVar("T")
_CHILD = {LOGBOOKS: FLOWS, FLOWS: ATOMS}


class MemoryBackend(Backend):
    """Every connection of one backend object sees the same rows."""

    def __init__(self, url: str = "memory://", serializer: Serializer | None = None) -> None:
        super().__init__(url, serializer)
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, Row]] = {t: {} for t in TABLES}
        self.events: list[tuple[int, str, str | None, float]] = []
        """Sent events (``flowkit.persistence.events``): (id, name, payload text, sent at)."""

    def get_connection(self, autocommit: bool = False) -> MemoryConnection:
        return MemoryConnection(self)


class MemoryConnection(Connection):
    """A view of its backend's rows; ``run`` holds the backend's lock for one unit of work."""

    backend: MemoryBackend

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(backend)
        self._tables = backend.tables

    def upgrade(self) -> None:
        """Nothing to migrate: the schema is the code."""

    def validate(self) -> None:
        """Always current."""

    def close(self) -> None:
        """Nothing held."""

    def run(self, fn: Callable[[], T]) -> T:
        with self.backend.lock:
            return fn()

    def select_rows(self, table: str, column: str | None = None, values: Collection[str] = ()) -> list[Row]:
        rows: Iterable[Row] = self._tables[table].values()
        if column is not None:
            wanted = set(values)
            rows = [r for r in rows if r[column] in wanted]
        keys = ORDER_BY[table]
        return sorted((dict(r) for r in rows), key=lambda r: tuple(r[k] for k in keys))

    def upsert_rows(self, table: str, rows: Sequence[Row]) -> None:
        parent = PARENT.get(table)
        if parent is not None:
            for row in rows:
                if row["parent_uuid"] not in self._tables[parent]:
                    raise StorageError(
                        f"cannot save {row['name']!r}: its parent {row['parent_uuid']!r} is not saved"
                    )
        target = self._tables[table]
        if table == ATOMS:
            self._check_unique_names(target, rows)
        for row in rows:
            old = target.get(row["uuid"])
            target[row["uuid"]] = {**old, **row} if old else dict(row)

    @staticmethod
    def _check_unique_names(target: dict[str, Row], rows: Sequence[Row]) -> None:
        """What the SQL schema's unique (flow detail, atom name) constraint does."""
        owner = {(r["parent_uuid"], r["name"]): uuid for uuid, r in target.items()}
        for row in rows:
            key = (row["parent_uuid"], row["name"])
            if owner.setdefault(key, row["uuid"]) != row["uuid"]:
                raise StorageError(f"flow detail {key[0]!r} already has an atom named {key[1]!r}")

    def update_row(self, table: str, uuid: str, values: Row, fence: int | None = None) -> bool:
        row = self._tables[table].get(uuid)
        if row is None or (fence is not None and row.get("fence", 0) != fence):
            return False
        row.update(values)
        return True

    def raise_fence(self, flow_uuid: str, token: int) -> int | None:
        flow = self._tables[FLOWS].get(flow_uuid)
        if flow is None:
            return None
        if flow.get("fence", 0) > token:
            return int(flow["fence"])
        flow["fence"] = token
        for row in self._tables[ATOMS].values():
            if row["parent_uuid"] == flow_uuid:
                row["fence"] = token
        return token

    def delete_row(self, table: str, uuid: str) -> bool:
        if self._tables[table].pop(uuid, None) is None:
            return False
        child = _CHILD.get(table)
        if child is not None:
            for kid in [k for k, r in self._tables[child].items() if r["parent_uuid"] == uuid]:
                self.delete_row(child, kid)
        return True

    def delete_all(self) -> None:
        for rows in self._tables.values():
            rows.clear()
        self.backend.events.clear()
