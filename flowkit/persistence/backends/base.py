"""The persistence contract: a :class:`Backend` hands out :class:`Connection` objects.

A connection's public operations (``get_logbook``, ``save_logbook``, ...) are written once, here, on
top of seven row-level primitives each backend implements (select, upsert, update, raise a flow's
fence, delete, delete all, and ``run`` for one unit of work). That keeps memory, SQLite and
PostgreSQL to one behaviour, which one contract test suite checks against all three.

``run(fn)`` is a unit of work: one transaction, retried as a whole by backends whose database can go
away (see :mod:`flowkit.persistence.backoff`). Primitives are only called inside ``run``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import TypeVar

from flowkit.exceptions import CorruptRecordError, NotFound, StorageError
from flowkit.persistence.models import AtomDetail, FlowDetail, LogBook, utcnow
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, Codec, Columns, Row, Serializer

T = TypeVar("T")
WrittenRow = tuple[str, str, Row]
"""(table, uuid, values): one row's update in :meth:`Connection.write_rows`."""
LOG = logging.getLogger("flowkit.persistence")

CorruptListener = Callable[[str, CorruptRecordError], None]
"""Told ``(logbook_uuid, error)`` of each logbook a listing leaves out because it cannot be read."""


def _warn_corrupt(uuid: str, exc: CorruptRecordError) -> None:
    LOG.warning("logbook %s skipped: it cannot be read: %s", uuid, exc)


class Backend(ABC):
    """Where flows are saved; built from a URL by :func:`flowkit.persistence.backends.fetch`."""

    setup_on_writer = False
    """Whether a recorder runs its set-up (:meth:`Connection.run_setup`) on its ``autocommit``
    connection, closed at once, rather than on a plain one: where closing and taking it again costs
    nothing (the SQL backend at ``durability="flow"``, whose relaxed connections it keeps between
    runs) and the set-up's transaction can be made as durable as it must be there."""

    start_is_durable = True
    """Whether an unfenced flow's start (RUNNING, RESUMING) is a durable point of its own. Not where a
    relaxed commit is lost only with the engine's machine (the SQL backend on a SQLite file at
    ``durability="flow"``): a crash that loses the start loses the engine with it, and every write
    after it too (the log is one sequence), so the flush would protect nothing the run's next durable
    point (a revert, a suspend, its end) does not. On a database server it is one: a server that
    crashes alone would take the set-up's rows with it while the engine goes on writing to them."""

    def __init__(self, url: str, serializer: Serializer | None = None) -> None:
        self.url = url
        self.codec = Codec(serializer)

    @abstractmethod
    def get_connection(self, autocommit: bool = False) -> Connection:
        """A connection; use it with ``with`` or call ``close()``.

        ``autocommit=True`` is for one writer doing one-statement writes (the engine's recorder of
        atom transitions): the connection keeps its database connection between calls and each
        statement commits on its own, so a state change costs one round trip. Its commits may be
        flushed to disk later (see the backend's ``durability``); a plain connection's never are.
        """

    def close(self) -> None:
        """Release pooled resources (database connections); the memory backend holds none."""
        return None

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        return self.url

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Connection(ABC):
    """Operations on saved logbooks, flow details and atom details. Not thread safe: one per thread."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.codec = backend.codec

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what a backend implements -------------------------------------------------------------------

    @abstractmethod
    def upgrade(self) -> None:
        """Create or migrate the schema to this flowkit's version (idempotent)."""

    @abstractmethod
    def validate(self) -> None:
        """Raise :class:`~flowkit.exceptions.SchemaError` unless the schema is this flowkit's version."""

    @abstractmethod
    def close(self) -> None:
        """Give back what the connection holds; it may be used again afterwards."""

    @abstractmethod
    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` as one unit of work (a transaction), retried where the backend can."""

    session = 0
    """Which database session the last unit of work ran on: a new value each time the connection opens
    one (after a lost connection, say). A database server that crashed loses the not yet flushed
    commits of the sessions it had, so a writer whose session changed cannot count on what it
    committed asynchronously before (see :attr:`durable`)."""

    @property
    def durable(self) -> bool:
        """Whether each commit is on disk when it returns; False for an ``autocommit`` connection of a
        backend that flushes its commits later (``durability="flow"``)."""
        return True

    def run_together(self, fn: Callable[[], T]) -> T:
        """Like :meth:`run`, but as one transaction even on an ``autocommit`` connection (one commit, as
        durable as that connection's own: see :attr:`durable`)."""
        return self.run(fn)

    def run_setup(self, fn: Callable[[], T], fenced: bool = False) -> T:
        """Like :meth:`run`, for the recorder's set-up of a flow detail (its new rows, its fence), and one
        transaction even on an ``autocommit`` connection (see :attr:`Backend.setup_on_writer`): on
        disk when this returns, except where a backend flushes it with the flow's first transition
        instead: where its commit can be lost with the engine's machine alone (a SQLite file at
        ``durability="flow"``), or, when ``fenced`` (the set-up raised the flow's fence, and every
        later write of the flow carries it), to a database server's crash the engine lives through
        (PostgreSQL at ``durability="flow"``): a set-up lost so takes its fence with it, and the
        flow's next write, refused, says so (:meth:`BackendRecorder._check_fence`)."""
        return self.run(fn)

    def run_durable(self, fn: Callable[[], T]) -> T:
        """Like :meth:`run`, but as one transaction even on an ``autocommit`` connection, whose commit
        is on disk when this returns, together with every commit this session made before it."""
        return self.run(fn)

    @abstractmethod
    def select_rows(self, table: str, column: str | None = None, values: Collection[str] = ()) -> list[Row]:
        """Rows of ``table`` (all of them, or those whose ``column`` is one of ``values``), in order."""

    def have_rows(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(table, uuid)`` of ``keys``: whether that row exists. A new flow's set-up asks this
        of its flow detail and logbook before it writes them; the SQL backend answers in one statement."""
        return [bool(self.select_rows(table, "uuid", [uuid])) for table, uuid in keys]

    @abstractmethod
    def upsert_rows(self, table: str, rows: Sequence[Row]) -> None:
        """Insert rows, or update them where their uuid exists; a missing parent is a StorageError."""

    def upsert_columns(self, table: str, columns: Columns) -> None:
        """:meth:`upsert_rows` of rows given column by column (every column as long as the others): what
        a new flow detail's set-up saves its atoms with, so a backend that binds values column by
        column (SQLite's) takes them so, without a dict per row."""
        names = tuple(columns)
        rows = zip(*columns.values(), strict=True)
        self.upsert_rows(table, [dict(zip(names, values, strict=True)) for values in rows])

    @abstractmethod
    def update_row(self, table: str, uuid: str, values: Row, fence: int | None = None) -> bool:
        """Update some columns of one row; False when there is no such row.

        With ``fence``, only where the row's ``fence`` column equals it (False otherwise): the check
        is part of the write, so a newer claim that raised the fence in between always wins.
        """

    def write_row(self, table: str, uuid: str, values: Row, fence: int | None = None) -> bool:
        """:meth:`update_row` as a unit of work of its own (``run(lambda: update_row(...))``): what a
        recorder does for each atom transition, so a backend may make it cheaper than the general
        path (the SQL one does, on its kept connection)."""
        return self.run(lambda: self.update_row(table, uuid, values, fence))

    def write_rows(self, rows: Sequence[WrittenRow], fence: int | None = None, durable: bool = False) -> bool:
        """Several rows' updates (``(table, uuid, values)`` each, as :meth:`update_row` takes them) as
        one unit of work in one transaction: one commit for all, as durable as :meth:`write_row`'s, or
        with ``durable`` as :meth:`run_durable`'s. Each row is written only if every row before it was
        found; True when all were.

        What the serial engine's paired transitions take (a task's SUCCESS with the next task's
        RUNNING, or with the flow's end: see ``BackendRecorder.flush_deferred``), so a backend may make
        it one round trip (the SQL one does on PostgreSQL). Retried as a whole: a caller that must know
        which session it ran on reads :attr:`session` afterwards."""

        def unit() -> bool:
            return self.update_in_order(rows, fence)

        return self.run_durable(unit) if durable else self.run_together(unit)

    def update_in_order(self, rows: Sequence[WrittenRow], fence: int | None = None) -> bool:
        """:meth:`update_row` of each of ``rows`` inside the caller's unit of work, each only if every
        row before it was found; True when all were."""
        return all(self.update_row(table, uuid, values, fence) for table, uuid, values in rows)

    def write_durable(self, rows: Sequence[WrittenRow], fence: int | None, session: int) -> bool | None:
        """:meth:`write_rows` with ``durable``, made only on database session ``session`` (the one the
        caller's earlier relaxed writes were made on, which this commit's flush must cover): None, and
        nothing written, when that session is gone (the caller then writes those again first)."""

        def unit() -> bool | None:
            return self.update_in_order(rows, fence) if self.session == session else None

        return self.run_durable(unit)

    @abstractmethod
    def raise_fence(self, flow_uuid: str, token: int) -> int | None:
        """Set the fence of a flow detail and of its atom details to ``token``, unless the flow
        detail's is higher already; return the flow detail's fence afterwards (``token`` when raised,
        a higher one when refused), or None when there is no such flow detail."""

    @abstractmethod
    def delete_row(self, table: str, uuid: str) -> bool:
        """Delete one row and its children; False when there is no such row."""

    @abstractmethod
    def delete_all(self) -> None:
        """Delete every row of every table."""

    # -- the public operations ---------------------------------------------------------------------

    def get_logbook(self, uuid: str) -> LogBook:
        """The logbook with its flow details and their atom details; NotFound if there is none."""

        def op() -> LogBook:
            rows = self.select_rows(LOGBOOKS, "uuid", [uuid])
            if not rows:
                raise NotFound(f"no logbook {uuid!r} in {self.backend.display_url}")
            book = self.codec.logbook_from(rows[0])
            for fd in self.read_flow_details("parent_uuid", [uuid]):
                book.add(fd)
            return book

        return self.run(op)

    def get_logbooks(self, on_corrupt: CorruptListener | None = None) -> list[LogBook]:
        """Every logbook, with its flow details and their atom details.

        A logbook with a record that cannot be read back (:class:`CorruptRecordError`: a value that
        is not JSON, a state that does not exist) is left out, so one bad row does not hide the
        others: ``on_corrupt(uuid, error)`` hears of each one left out (by default a warning on
        the ``flowkit.persistence`` logger). Asked for by uuid, such a logbook is an error.
        """

        def op() -> tuple[list[LogBook], dict[str, CorruptRecordError]]:
            bad: dict[str, CorruptRecordError] = {}
            books: dict[str, LogBook] = {}
            for row in self.select_rows(LOGBOOKS):
                try:
                    books[row["uuid"]] = self.codec.logbook_from(row)
                except CorruptRecordError as exc:
                    bad[row["uuid"]] = exc
            fds: dict[str, FlowDetail] = {}
            for row in self.select_rows(FLOWS, "parent_uuid", list(books)):
                try:
                    fds[row["uuid"]] = self.codec.flow_from(row)
                except CorruptRecordError as exc:
                    bad.setdefault(row["parent_uuid"], exc)
            for row in self.select_rows(ATOMS, "parent_uuid", list(fds)) if fds else ():
                fd = fds[row["parent_uuid"]]
                try:
                    fd.add(self.codec.atom_from(row))
                except CorruptRecordError as exc:
                    bad.setdefault(fd.parent_uuid or "", exc)
            for fd in fds.values():
                if fd.parent_uuid in books:
                    books[fd.parent_uuid].add(fd)
            return [book for uuid, book in books.items() if uuid not in bad], bad

        books, bad = self.run(op)
        for uuid, exc in bad.items():
            (on_corrupt or _warn_corrupt)(uuid, exc)
        return books

    def get_flow_details(self, book_uuid: str) -> list[FlowDetail]:
        """The flow details of one logbook; NotFound if there is no such logbook."""

        def op() -> list[FlowDetail]:
            if not self.select_rows(LOGBOOKS, "uuid", [book_uuid]):
                raise NotFound(f"no logbook {book_uuid!r} in {self.backend.display_url}")
            return self.read_flow_details("parent_uuid", [book_uuid])

        return self.run(op)

    def get_flow_detail(self, uuid: str) -> FlowDetail:
        """One flow detail with its atom details; NotFound if there is none."""

        def op() -> FlowDetail:
            found = self.read_flow_details("uuid", [uuid])
            if not found:
                raise NotFound(f"no flow detail {uuid!r} in {self.backend.display_url}")
            return found[0]

        return self.run(op)

    def save_logbook(self, book: LogBook) -> LogBook:
        """Save a logbook, its flow details and their atom details (merged with what is saved)."""
        book.updated_at = utcnow()
        book_row = self.codec.logbook_row(book)
        flow_rows = [self.codec.flow_row(fd) for fd in book]
        atom_rows = [self.codec.atom_row(ad) for fd in book for ad in fd]

        def op() -> None:
            self.upsert_rows(LOGBOOKS, [book_row])
            self.upsert_rows(FLOWS, flow_rows)
            self.upsert_rows(ATOMS, atom_rows)

        self.run_together(op)  # one message on PostgreSQL
        return book

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Save one flow detail and its atom details; its logbook must be saved already."""
        if flow_detail.parent_uuid is None:
            raise StorageError(
                f"flow detail {flow_detail.name!r} ({flow_detail.uuid}) is in no logbook: "
                f"add it to one and save_logbook()"
            )
        flow_detail.updated_at = utcnow()
        flow_row = self.codec.flow_row(flow_detail)
        atom_rows = [self.codec.atom_row(ad) for ad in flow_detail]

        def op() -> None:
            self.upsert_rows(FLOWS, [flow_row])
            self.upsert_rows(ATOMS, atom_rows)

        self.run_together(op)  # one message on PostgreSQL
        return flow_detail

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Save one atom detail; its flow detail must be saved already."""
        if atom_detail.parent_uuid is None:
            raise StorageError(f"atom detail {atom_detail.name!r} is in no flow detail")
        row = self.codec.atom_row(atom_detail)
        self.run(lambda: self.upsert_rows(ATOMS, [row]))
        return atom_detail

    def destroy_logbook(self, uuid: str) -> None:
        """Delete a logbook with everything in it; NotFound if there is none."""
        if not self.run(lambda: self.delete_row(LOGBOOKS, uuid)):
            raise NotFound(f"no logbook {uuid!r} in {self.backend.display_url}")

    def clear_all(self) -> None:
        """Delete every logbook, flow detail and atom detail, and every event."""
        self.run(self.delete_all)

    def take_flow_detail(self, flow_uuid: str, token: int) -> tuple[int | None, FlowDetail | None]:
        """:meth:`raise_fence`, then the flow detail as it is with the fence raised (None when there is
        no such flow detail, or the fence was refused): what a fenced recorder resumes from. Row
        level: call it inside :meth:`run`. A backend may do both in fewer statements."""
        found = self.raise_fence(flow_uuid, token)
        if found != token:
            return found, None
        fds = self.read_flow_details("uuid", [flow_uuid])
        return found, fds[0] if fds else None

    def read_flow_details(self, column: str, values: Collection[str]) -> list[FlowDetail]:
        """Flow details (with their atom details) whose ``column`` is one of ``values``.

        Row level, like the primitives: call it inside :meth:`run`.
        """
        fds = {r["uuid"]: self.codec.flow_from(r) for r in self.select_rows(FLOWS, column, values)}
        if fds:
            for row in self.select_rows(ATOMS, "parent_uuid", list(fds)):
                fds[row["parent_uuid"]].add(self.codec.atom_from(row))
        return list(fds.values())
