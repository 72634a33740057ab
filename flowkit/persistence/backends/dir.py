"""``dir:///path`` (or ``file:///path``): one JSON file per logbook in a directory, no database.

For a single machine without SQLite at hand, and for TaskFlow code that asks for its directory
backend. Each logbook file holds the logbook row with its flow-detail and atom-detail rows, so a
logbook is written (and survives a crash) as one unit: a file is replaced whole through a temporary
file and ``os.replace``, which is atomic on POSIX, so a reader never sees half a logbook.

A unit of work (``run``) holds an exclusive ``flock`` on ``.lock`` in the directory (processes) and
the backend's lock (threads), reads every logbook file, runs on those rows with the memory backend's
rules, and writes back only the logbooks it changed; if the unit raises, nothing is written. Every
unit reads the whole directory: fine for tens of logbooks, not for thousands (use SQLite then).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from flowkit.exceptions import InvalidFormat, StorageError
from flowkit.persistence.backends.memory import MemoryBackend, MemoryConnection
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, TABLES, Row, Serializer

T = TypeVar("T")
SCHEMES = ("dir", "file")
_SUFFIX = ".json"
_DATETIME = "$datetime"
"""Rows carry ``datetime`` timestamps, which JSON lacks: stored as ``{"$datetime": iso}``."""


def path_of(url: str) -> Path:
    """The directory a ``dir://`` / ``file://`` URL names (``dir:///abs`` or ``dir://relative``)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidFormat(f"not a directory backend URL: {url!r}; use dir:///path or file:///path")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise InvalidFormat(f"directory backend URL {url!r} names no directory; use dir:///path")
    return Path(path)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    raise TypeError(f"a row value of type {type(value).__name__} cannot go to a JSON file")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DATETIME in obj:
        return datetime.fromisoformat(obj[_DATETIME])
    return obj


class DirBackend(MemoryBackend):
    """The memory backend's rows, loaded from and saved to the directory around each unit of work."""

    def __init__(self, url: str, serializer: Serializer | None = None) -> None:
        super().__init__(url, serializer)
        self.path = path_of(url)

    def get_connection(self, autocommit: bool = False) -> DirConnection:
        return DirConnection(self)


class DirConnection(MemoryConnection):
    backend: DirBackend

    def upgrade(self) -> None:
        """Create the directory; there is no schema beyond the file layout."""
        try:
            self.backend.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create directory {self.backend.path}: {exc}") from exc

    def validate(self) -> None:
        if not self.backend.path.is_dir():
            raise StorageError(f"{self.backend.path} is not a directory (run upgrade() first)")

    def run(self, fn: Callable[[], T]) -> T:
        path = self.backend.path
        with self.backend.lock:
            try:
                path.mkdir(parents=True, exist_ok=True)
                lock = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise StorageError(f"cannot use directory {path}: {exc}") from exc
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                before = self._load()
                result = fn()
                self._save(before)
                return result
            finally:
                os.close(lock)

    def _load(self) -> dict[str, str]:
        """Fill the tables from the files; returns each logbook's file text as read (to spot changes)."""
        for table in TABLES:
            self._tables[table].clear()
        texts: dict[str, str] = {}
        for file in sorted(self.backend.path.glob("*" + _SUFFIX)):
            try:
                text = file.read_text(encoding="utf-8")
                doc = json.loads(text, object_hook=_decode)
                book: Row = doc["logbook"]
                self._tables[LOGBOOKS][book["uuid"]] = book
                for table in (FLOWS, ATOMS):
                    for row in doc[table]:
                        self._tables[table][row["uuid"]] = row
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StorageError(f"cannot read logbook file {file}: {exc}") from exc
            texts[book["uuid"]] = text
        return texts

    def _documents(self) -> dict[str, str]:
        """Each logbook with its flows and atoms, as the text its file should hold."""
        flows_of: dict[str, list[Row]] = {}
        for row in self._tables[FLOWS].values():
            flows_of.setdefault(row["parent_uuid"], []).append(row)
        atoms_of: dict[str, list[Row]] = {}
        for row in self._tables[ATOMS].values():
            atoms_of.setdefault(row["parent_uuid"], []).append(row)
        docs: dict[str, str] = {}
        for uuid, book in self._tables[LOGBOOKS].items():
            flows = flows_of.get(uuid, [])
            atoms = [a for f in flows for a in atoms_of.get(f["uuid"], [])]
            doc = {"logbook": book, FLOWS: flows, ATOMS: atoms}
            try:
                docs[uuid] = json.dumps(doc, default=_encode, sort_keys=True, indent=1)
            except (TypeError, ValueError) as exc:
                raise StorageError(f"cannot write logbook {uuid!r} as JSON: {exc}") from exc
        return docs

    def _save(self, before: dict[str, str]) -> None:
        after = self._documents()
        try:
            for uuid, text in after.items():
                if before.get(uuid) != text:
                    self._write(uuid, text)
            for uuid in before.keys() - after.keys():
                (self.backend.path / (uuid + _SUFFIX)).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write to directory {self.backend.path}: {exc}") from exc

    def _write(self, uuid: str, text: str) -> None:
        """Temporary file, fsync, ``os.replace``: the logbook file is the old one or the new one."""
        fd, tmp = tempfile.mkstemp(dir=self.backend.path, prefix="." + uuid, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.backend.path / (uuid + _SUFFIX))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


__all__ = ["SCHEMES", "DirBackend", "DirConnection", "path_of"]
