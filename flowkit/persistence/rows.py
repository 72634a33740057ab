"""Models to rows and back: the one place that decides how a value looks in the database.

Every backend stores the same rows (a dict of column -> value per record), so the memory backend
behaves exactly like SQLite and PostgreSQL: a value that would not reach a real database fails the
same way in a unit test. Values are encoded by a :class:`Serializer` (JSON by default: no pickle in
the database, so stored flows never run code on load and outlive the code that wrote them);
failures are stored as :meth:`Failure.to_dict` data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from flowkit.exceptions import CorruptRecordError, NotSerializableError
from flowkit.failure import Failure
from flowkit.persistence.models import (
    ATOM_DETAIL_CLASSES,
    AtomDetail,
    FlowDetail,
    LogBook,
    RetryDetail,
)
from flowkit.retry import History
from flowkit.states import FlowState

LOGBOOKS = "logbooks"
FLOWS = "flowdetails"
ATOMS = "atomdetails"
TABLES = (LOGBOOKS, FLOWS, ATOMS)
"""Logical table names, parents first (SQL tables carry a ``flowkit_`` prefix)."""
PARENT = {FLOWS: LOGBOOKS, ATOMS: FLOWS}
ORDER_BY = {LOGBOOKS: ("created_at", "uuid"), FLOWS: ("created_at", "uuid"), ATOMS: ("position", "name")}
"""How every backend orders the rows it reads, so all of them list things the same way."""

Row = dict[str, Any]
Columns = dict[str, list[Any]]
"""Rows column by column: each column's values, one per row, in the rows' order."""


class Serializer(Protocol):
    """Turns stored values into text and back. Raise TypeError/ValueError for what it cannot encode."""

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str) -> Any: ...


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps(value, separators=(",", ":"))`` without making an encoder per call (every result)."""


class JsonSerializer:
    """The default serializer: plain JSON (tuples come back as lists, dict keys as strings)."""

    def dumps(self, value: Any) -> str:
        return _ENCODE(value)

    def loads(self, text: str) -> Any:
        return json.loads(text)


def _corrupt(kind: str, row: Mapping[str, Any], exc: Exception) -> CorruptRecordError:
    """``exc``, met reading ``row``, as the error that names the record (its uuid finds the row)."""
    if isinstance(exc, CorruptRecordError):
        return CorruptRecordError(f"{kind} {row.get('uuid')}: {exc}")
    return CorruptRecordError(
        f"{kind} {row.get('name')!r} ({row.get('uuid')}) in the database is corrupt: {exc}"
    )


class Codec:
    """Encodes models into rows with one serializer; errors name the atom (or record) involved."""

    def __init__(self, serializer: Serializer | None = None) -> None:
        self.serializer: Serializer = serializer or JsonSerializer()
        try:  # an empty dict's text, made once: every new atom detail's row has an empty ``meta``
            self._empty: str | None = self.serializer.dumps({})
        except (TypeError, ValueError):  # (then every row's fails, naming its atom)
            self._empty = None

    # -- values -------------------------------------------------------------------------------------

    def dump(self, value: Any, owner: str, what: str) -> str | None:
        """``value`` as text (None stays SQL NULL); NotSerializableError names ``owner``."""
        if value is None:
            return None
        try:
            return self.serializer.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise NotSerializableError(owner, what, f"{type(exc).__name__}: {exc}") from exc

    def load(self, text: str | None, owner: str, what: str) -> Any:
        if text is None:
            return None
        try:
            return self.serializer.loads(text)
        except Exception as exc:
            raise CorruptRecordError(f"{what} of {owner!r} in the database is corrupt: {exc}") from exc

    def dump_failure(self, failure: Failure | None, owner: str, what: str = "the failure") -> str | None:
        return None if failure is None else self.dump(failure.to_dict(), owner, what)

    def load_failure(self, text: str | None, owner: str) -> Failure | None:
        data = self.load(text, owner, "a failure")
        return None if data is None else Failure.from_dict(data)

    def dump_history(self, history: History, owner: str) -> str | None:
        data = {
            "attempts": [[r, {n: f.to_dict() for n, f in fs.items()}] for r, fs in history],
            "failure": history.failure.to_dict() if history.failure is not None else None,
        }
        return self.dump(data, owner, "the retry history")

    def load_history(self, text: str | None, owner: str) -> History:
        data = self.load(text, owner, "the retry history")
        if not data:
            return History()
        attempts = [(r, {n: Failure.from_dict(f) for n, f in fs.items()}) for r, fs in data["attempts"]]
        failure = data.get("failure")
        return History(attempts, Failure.from_dict(failure) if failure else None)

    # -- atom fields (the recorder's partial updates) -------------------------------------------------

    def atom_values(self, fields: Mapping[str, Any], atom_name: str) -> Row:
        """Column values for the model ``fields`` of one atom detail (only those given).

        Called for every atom transition: one dict lookup per field; most columns pass as they are.
        """
        out: Row = {}
        for key, value in fields.items():
            convert = _ATOM_COLUMNS.get(key)
            out[key] = value if convert is None or value is None else convert(self, value, atom_name)
        return out

    # -- whole records ------------------------------------------------------------------------------

    def logbook_row(self, book: LogBook) -> Row:
        return {
            "uuid": book.uuid,
            "name": book.name,
            "meta": self.dump(book.meta, f"logbook {book.name}", "the meta"),
            "created_at": book.created_at,
            "updated_at": book.updated_at,
        }

    def logbook_from(self, row: Mapping[str, Any]) -> LogBook:
        """The logbook a row holds; :class:`CorruptRecordError` naming it when the row is not one."""
        try:
            return self._logbook_from(row)
        except (CorruptRecordError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _corrupt("logbook", row, exc) from exc

    def _logbook_from(self, row: Mapping[str, Any]) -> LogBook:
        return LogBook(
            row["name"],
            row["uuid"],
            meta=self.load(row["meta"], row["name"], "the meta"),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def flow_row(self, fd: FlowDetail) -> Row:
        owner = f"flow {fd.name}"
        return {
            "uuid": fd.uuid,
            "parent_uuid": fd.parent_uuid,
            "name": fd.name,
            "state": (fd.state or FlowState.PENDING).value,  # a new flow detail (None) is saved PENDING
            "meta": self.dump(fd.meta, owner, "the meta (store or factory arguments)"),
            "failures": self.dump({n: f.to_dict() for n, f in fd.failures.items()}, owner, "failures"),
            "created_at": fd.created_at,
            "updated_at": fd.updated_at,
        }

    def flow_failures(self, failures: Mapping[str, Failure], flow_name: str) -> str | None:
        return self.dump({n: f.to_dict() for n, f in failures.items()}, f"flow {flow_name}", "failures")

    def flow_from(self, row: Mapping[str, Any]) -> FlowDetail:
        """The flow detail a row holds; :class:`CorruptRecordError` naming it when the row is not one."""
        try:
            return self._flow_from(row)
        except (CorruptRecordError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _corrupt("flow detail", row, exc) from exc

    def _flow_from(self, row: Mapping[str, Any]) -> FlowDetail:
        name = row["name"]
        failures = self.load(row["failures"], name, "the flow failures") or {}
        return FlowDetail(
            name,
            row["uuid"],
            state=row["state"],
            meta=self.load(row["meta"], name, "the meta"),
            failures={n: Failure.from_dict(f) for n, f in failures.items()},
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            parent_uuid=row["parent_uuid"],
        )

    def atom_row(self, ad: AtomDetail) -> Row:
        """Every column of one atom detail: the one row of :meth:`atom_columns` (saving a logbook, a
        flow detail or an atom detail whole; a new flow detail's set-up takes the columns)."""
        return {name: values[0] for name, values in self.atom_columns((ad,)).items()}

    def atom_columns(self, ads: Sequence[AtomDetail]) -> Columns:
        """Every column of each of ``ads``, column by column (each value as :meth:`atom_values` encodes
        its field), in the rows' order.

        Why: a new flow detail's set-up saves a row per atom, and SQLite's upsert binds them column by
        column (a value the same in every row once): a dict per atom, taken apart again, cost more
        than the values themselves. A column here is one loop over the atoms.
        """
        dump, dump_failure, empty = self.dump, self.dump_failure, self._empty
        histories = [ad.history if isinstance(ad, RetryDetail) else None for ad in ads]
        return {
            "uuid": [ad.uuid for ad in ads],
            "parent_uuid": [ad.parent_uuid for ad in ads],
            "name": [ad.name for ad in ads],
            "kind": [ad.kind for ad in ads],
            "position": [ad.position or 0 for ad in ads],
            "state": [str(ad.state) for ad in ads],  # StrEnums: str() is the value
            "intention": [str(ad.intention) for ad in ads],
            "results": [
                None if ad.results is None else dump(ad.results, ad.name, "the result") for ad in ads
            ],
            "failure": [None if ad.failure is None else dump_failure(ad.failure, ad.name) for ad in ads],
            "revert_results": [
                None if ad.revert_results is None else dump(ad.revert_results, ad.name, "the revert result")
                for ad in ads
            ],
            "revert_failure": [
                None if ad.revert_failure is None else dump_failure(ad.revert_failure, ad.name) for ad in ads
            ],
            "history": [
                None if history is None else self.dump_history(history, ad.name)
                for ad, history in zip(ads, histories, strict=True)
            ],
            "version": [ad.version for ad in ads],
            "attempts": [ad.attempts for ad in ads],
            "seq": [ad.seq for ad in ads],
            "started_at": [ad.started_at for ad in ads],
            "finished_at": [ad.finished_at for ad in ads],
            "revert_started_at": [ad.revert_started_at for ad in ads],
            "revert_finished_at": [ad.revert_finished_at for ad in ads],
            "meta": [
                None
                if ad.meta is None
                else empty
                if not ad.meta and empty is not None
                else dump(ad.meta, ad.name, "the meta")
                for ad in ads
            ],
        }

    def atom_from(self, row: Mapping[str, Any]) -> AtomDetail:
        """The atom detail a row holds; :class:`CorruptRecordError` naming it when the row is not one."""
        try:
            return self._atom_from(row)
        except (CorruptRecordError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _corrupt("atom detail", row, exc) from exc

    def _atom_from(self, row: Mapping[str, Any]) -> AtomDetail:
        name = row["name"]
        cls = ATOM_DETAIL_CLASSES.get(row["kind"])
        if cls is None:
            raise CorruptRecordError(f"atom detail {name!r} has unknown kind {row['kind']!r}")
        kwargs: dict[str, Any] = {}
        if cls is RetryDetail:
            kwargs["history"] = self.load_history(row["history"], name)
        return cls(
            name,
            row["uuid"],
            state=row["state"],
            intention=row["intention"],
            results=self.load(row["results"], name, "the result"),
            failure=self.load_failure(row["failure"], name),
            revert_results=self.load(row["revert_results"], name, "the revert result"),
            revert_failure=self.load_failure(row["revert_failure"], name),
            version=row["version"],
            attempts=row["attempts"],
            seq=row["seq"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            # .get: a dir:// file written before these columns existed has no such keys
            revert_started_at=row.get("revert_started_at"),
            revert_finished_at=row.get("revert_finished_at"),
            meta=self.load(row["meta"], name, "the meta"),
            parent_uuid=row["parent_uuid"],
            position=row["position"],
            **kwargs,
        )


_ATOM_COLUMNS: dict[str, Callable[[Codec, Any, str], Any]] = {
    "results": lambda codec, value, name: codec.dump(value, name, "the result"),
    "revert_results": lambda codec, value, name: codec.dump(value, name, "the revert result"),
    "failure": lambda codec, value, name: codec.dump_failure(value, name),
    "revert_failure": lambda codec, value, name: codec.dump_failure(value, name),
    "history": lambda codec, value, name: codec.dump_history(value, name),
    "meta": lambda codec, value, name: codec.dump(value, name, "the meta"),
    # AtomState and Intention are StrEnums: str() is their value (a plain str stays itself)
    "state": lambda codec, value, name: str(value),
    "intention": lambda codec, value, name: str(value),
}
"""How :meth:`Codec.atom_values` turns a model field into its column (None stays NULL; others as is)."""
