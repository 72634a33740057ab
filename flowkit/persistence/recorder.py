"""The engine's link to a backend: every state change is written before the engine acts on it.

:class:`BackendRecorder` is the :class:`~flowkit.storage.Recorder` the engine calls inside every
transition. Each atom transition is ONE ``UPDATE`` of the atom's row on an autocommit connection the
recorder keeps while the flow runs (one round trip, one commit; the serial engine saves a task's
SUCCESS with the next task's RUNNING, and a start that is no durable point with the first task's
RUNNING, see :meth:`BackendRecorder.flush_deferred`); flow transitions,
a few per run, are written on the same connection in a durable transaction, which also flushes every
atom transition before it (see the backend's ``durability``). So:

- an atom is RUNNING in the database before ``execute`` starts, and REVERTING before ``revert``;
- a result is in the database before the atom counts as SUCCESS (and before its successors start);
- the flow's state and the failures it reverts for are saved with each flow transition, durably,
  except a fenced flow's start (RUNNING, RESUMING: no failures to save), flushed with the next one,
  and any flow's start on a SQLite file (lost only with the engine's machine, and then with every
  write after it: see ``Backend.start_is_durable``);
- a flow detail's set-up (:meth:`BackendRecorder.restore`: its new rows, its fence) is one
  transaction (:meth:`~flowkit.persistence.backends.base.Connection.run_setup`), on disk at once, or
  at the default durability with the flow's first transition (the next durable commit): on a SQLite
  file (on the same database connection), and on PostgreSQL for a fenced flow, whose writes all carry
  the fence the set-up raised (a set-up lost in a server crash is then seen by the next write: see
  :meth:`BackendRecorder._check_fence`);
- a flow's final state is saved only when every atom's is durable: a flush covers the commits of its
  own database session only, so after a lost connection (a database server crash loses the commits it
  had not flushed yet) the recorder writes again, durably, every atom row it changed since the last
  flush (it keeps their values until then).

:meth:`BackendRecorder.restore` (called once, in ``engine.prepare()``) loads a saved flow detail into
the engine's storage by atom *name*, which is what makes resume work: SUCCESS atoms are not run again,
an atom that was RUNNING runs again (at least once: its execute may have run, fully or partly, before
the crash), and a flow that was REVERTING goes on reverting. A flow found RUNNING or REVERTING was
interrupted (nothing runs it any more), so it is resumed like a SUSPENDED one; so is a flow found
SUCCESS or REVERTED whose atoms are not all finished (lost writes: the engine could not have left
that), with a warning naming it.

When a write fails past the backend's retry bound, the StorageError stops the engine. Nothing saved
is lost; load a new engine on the same flow detail to resume from the database (the atom whose
write failed runs again if its SUCCESS was not saved).

Fencing. A recorder given a ``fence`` token (a job board claim's, see ``docs/jobboards.md``) first
raises the flow detail's saved fence to it in :meth:`restore`, in the same transaction as the rest of
the restore, and is refused there if a newer claim raised it higher already. Every later write is
then ``UPDATE ... WHERE uuid = :uuid AND fence = :token``: the check is in the row that is written,
so it costs nothing extra and a newer claim's restore, once committed, refuses every write of the
older one. A refused write raises :class:`~flowkit.exceptions.ClaimLost` (never retried), which stops
the engine. Without a token the writes are the plain ``WHERE uuid = :uuid`` ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from flowkit.compiler import JUNCTION, RETRY
from flowkit.exceptions import ClaimLost, NotFound, StorageError
from flowkit.persistence.atom_uuids import flow_atom_uuids, version_texts
from flowkit.persistence.backends.base import Backend, Connection, WrittenRow
from flowkit.persistence.models import (
    AtomDetail,
    FlowDetail,
    Intention,
    LogBook,
    RetryDetail,
    TaskDetail,
    utcnow,
)
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS
from flowkit.states import ATOM_DONE, FLOW_FINISHED, AtomState, FlowState
from flowkit.storage import Recorder, Storage

S = AtomState
LOG = logging.getLogger(__name__)
_INTERRUPTED = frozenset({FlowState.RUNNING, FlowState.REVERTING, FlowState.RESUMING})
_RELEASE = FLOW_FINISHED | {FlowState.SUSPENDED}
# Flow transitions that start a run: no durable point of their own in a fenced flow, nor on SQLite (see
# flow_changed)
_STARTS = frozenset({FlowState.RUNNING, FlowState.RESUMING})
# The states a finished flow's atoms can be saved in; another one means a write was lost (see restore)
_FINAL_ATOMS = {
    FlowState.SUCCESS: ATOM_DONE,
    FlowState.REVERTED: frozenset({S.PENDING, S.REVERTED, S.IGNORE}),
}
# Kept atom rows (see BackendRecorder._keep) past which a durable point is made anyway: bounds the memory
# they take and the size of a re-write, for one extra flush per this many atoms of a long flow
KEEP_MAX = 10_000
WAIT_META = "wait"
"""The atom meta key of a durable wait's deadline and event (``flowkit.engines.waiting``)."""
_RUNNING, _SUCCESS, _EXECUTE = S.RUNNING.value, S.SUCCESS.value, Intention.EXECUTE.value  # column values
# The members the atom transitions' common path compares with, as module names: on Python 3.11 an
# enum class's attribute (``S.RUNNING``) goes through EnumType.__getattr__'s hook (five per task)
_S_RUNNING, _S_SUCCESS, _S_FAILURE, _INTENT_EXECUTE = S.RUNNING, S.SUCCESS, S.FAILURE, Intention.EXECUTE
_CLEARED = {
    "intention": Intention.EXECUTE,
    "results": None,
    "failure": None,
    "revert_results": None,
    "revert_failure": None,
    "seq": 0,
    "started_at": None,
    "finished_at": None,
    "revert_started_at": None,
    "revert_finished_at": None,
}


class BackendRecorder(Recorder):
    """Saves one flow detail's run to ``backend``; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        flow_detail: FlowDetail,
        book: LogBook | None = None,
        fence: int | None = None,
        saved: bool = False,
    ) -> None:
        self.backend = backend
        self.flow_detail = flow_detail
        self.book = book
        self.fence = fence
        """The fencing token every write carries (None: unfenced); see the module docstring."""
        self.saved = saved
        """Whether the flow detail must be saved already (a reference, as a job carries it): then
        :meth:`restore` raises NotFound for one that is not, and writes nothing."""
        self._codec = backend.codec
        self._conn: Connection | None = None
        self._details: list[AtomDetail | None] = []
        # atom writes committed asynchronously since the last durable point, by uuid (merged values),
        # and the database session they were all made on: see _keep
        self._kept: dict[str, dict[str, Any]] = {}
        self._kept_session = 0
        self._relaxed = False
        self._unfinished: list[str] = []
        self._held: dict[str, dict[str, Any]] | None = None  # atom writes held for a group commit
        self.pair_next = False
        """Set by the serial engine right before it records a task's completion: a SUCCESS is then
        kept (``_deferred``) and written with the next write, in one transaction (see
        :meth:`flush_deferred`)."""
        # (storage, atom index, uuid, values) of the SUCCESS kept for pairing
        self._deferred: tuple[Storage, int, str, dict[str, Any]] | None = None
        self.pair_start = False
        """Set by the serial engine right before it records the flow's RUNNING when nothing can look at
        the flow before its first atom write (``Engine.run()``, no flow listeners): a start that is no
        durable point (see :meth:`flow_changed`) is then kept (``_start``) and written with that atom
        write, in one transaction (on PostgreSQL one round trip fewer per run; see
        :meth:`flush_deferred`)."""
        # (storage, its flow state before, the flow detail's before, the flow row's values) of the start
        # kept for pairing
        self._start: tuple[Storage, FlowState, FlowState | None, dict[str, Any]] | None = None
        self.after_deferred: Callable[[int], None] | None = None
        """Called with the atom's index once its kept SUCCESS is saved (set by the engine when it tells
        listeners of each SUCCESS: they are told then, not before)."""

    groups = True
    pairs = True

    # -- connection ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Give the database connection back (done at the end of every run)."""
        if self._deferred is not None:  # not written (the run stopped in between): memory says so too
            storage, i = self._deferred[:2]
            self._deferred = None
            self._unsaved(storage, i)
        if self._start is not None:
            self._start_unsaved()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.backend.get_connection(autocommit=True)
            self._relaxed = not self._conn.durable
        return self._conn

    def _write(self, table: str, uuid: str, values: dict[str, Any], durable: bool = True) -> None:
        """Every row goes through the kept autocommit connection: an atom row with one statement, a flow
        row in a durable transaction that also makes every atom write before it durable (_flush), or,
        not ``durable``, with one statement as an atom's (flushed by the next durable point). A SUCCESS
        kept for pairing goes first, with this write (on its own before a flow row that is no durable
        point)."""
        self.pair_next = False
        if self._start is not None:
            if table == ATOMS and self._deferred is None and self._held is None:
                self._write_start((uuid, values))
                return
            self._write_start()
        deferred = self._deferred
        if deferred is not None:
            if table == ATOMS and self._held is None:
                self._write_paired(uuid, values)
                return
            if table != FLOWS or not durable:
                self.flush_deferred()
                deferred = None
        held = self._held
        if held is not None:
            if table == ATOMS:
                old = held.get(uuid)
                if old is None:
                    held[uuid] = values
                else:
                    old.update(values)
                return
            self.commit_held()
        conn, fence = self._conn or self._connection(), self.fence
        try:
            if table == FLOWS and durable:
                rows = [(FLOWS, uuid, values)]
                if deferred is not None:  # (left kept until written: close() tells memory otherwise)
                    rows.insert(0, (ATOMS, deferred[2], deferred[3]))
                found = self._flush(conn, rows)
                self._deferred = None
            else:
                found = conn.write_row(table, uuid, values, fence)
                if found and self._relaxed and table == ATOMS:
                    self._keep(conn, uuid, values)
        except BaseException:
            self.close()
            raise
        if not found:
            self._missing(table, uuid)
        if deferred is not None and self.after_deferred is not None:  # saved with the flow's row
            self.after_deferred(deferred[1])

    def _write_atom(self, uuid: str, values: dict[str, Any]) -> None:
        """:meth:`_write` of an atom row, its common path spelled out (a task's RUNNING and SUCCESS):
        on the kept connection, no group commit holding it."""
        conn = self._conn
        if conn is None or self._held is not None or self._deferred is not None or self._start is not None:
            self._write(ATOMS, uuid, values)
            return
        try:
            found = conn.write_row(ATOMS, uuid, values, self.fence)
            if found and self._relaxed:
                self._keep(conn, uuid, values)
        except BaseException:
            self.close()
            raise
        if not found:
            self._missing(ATOMS, uuid)

    def flush_deferred(self) -> None:
        """Pairing: write the SUCCESS kept for it now, on its own.

        The serial engine runs one task at a time, and each task's SUCCESS is followed at once by the
        next task's RUNNING: so it sets :attr:`pair_next` before recording a completion, the SUCCESS is
        kept, and the next write saves both in one transaction (``Connection.write_rows``: one commit,
        on PostgreSQL one round trip) before that task's ``execute`` starts. Nothing acts on the SUCCESS
        before it is saved: listeners are told of it then (:attr:`after_deferred`), and wherever
        something else could come first (a decider's call, the end of a round of starts, a suspend),
        the engine calls this. A failed write puts the atom back to RUNNING in memory, as the
        database has it, and tells nobody.

        The flow's start is kept the same way (:attr:`pair_start`) for the first atom write (the first
        task's RUNNING, made before its ``execute``); this writes it too, on its own.
        """
        self.pair_next = False
        if self._start is not None:
            self._write_start()
        deferred = self._deferred
        if deferred is None:
            return
        self._deferred = None
        storage, i, uuid, values = deferred
        try:
            self._write_atom(uuid, values)
        except BaseException:
            self._unsaved(storage, i)
            raise
        if self.after_deferred is not None:
            self.after_deferred(i)

    def keeps(self, i: int) -> bool:
        deferred = self._deferred
        return deferred is not None and deferred[1] == i

    def _write_paired(self, uuid: str, values: dict[str, Any]) -> None:
        """The kept SUCCESS and this atom write, in one transaction (see :meth:`flush_deferred`)."""
        assert self._deferred is not None
        storage, i, first, first_values = self._deferred
        self._deferred = None
        conn = self._conn or self._connection()
        try:
            found = conn.write_rows(((ATOMS, first, first_values), (ATOMS, uuid, values)), self.fence)
            if found and self._relaxed:
                self._keep(conn, first, first_values)
                self._keep(conn, uuid, values)
        except BaseException:
            self._unsaved(storage, i)
            self.close()
            raise
        if not found:
            self._missing(ATOMS, f"{first} (or {uuid}, written after it)")
        if self.after_deferred is not None:
            self.after_deferred(i)

    def _write_start(self, atom: tuple[str, dict[str, Any]] | None = None) -> None:
        """Write the kept flow start (see :attr:`pair_start`): with the write of ``atom`` (its uuid and
        values) in one transaction, or on its own (the next write is not one it can go with)."""
        assert self._start is not None
        flow_uuid = self.flow_detail.uuid
        start = (FLOWS, flow_uuid, self._start[3])
        conn = self._conn or self._connection()
        try:
            if atom is None:
                found = conn.write_row(*start, self.fence)
            else:
                found = conn.write_rows((start, (ATOMS, *atom)), self.fence)
                if found and self._relaxed:
                    self._keep(conn, *atom)
        except BaseException:
            self._start_unsaved()
            self.close()
            raise
        if not found:
            self._start_unsaved()
            self._missing(
                FLOWS, flow_uuid if atom is None else f"{flow_uuid} (or atom {atom[0]}, written with it)"
            )
        self._start = None

    def _start_unsaved(self) -> None:
        """The kept flow start was not saved: memory goes back to the state the database has."""
        assert self._start is not None
        storage, before, detail_before, _ = self._start
        self._start = None
        storage.flow_state, self.flow_detail.state = before, detail_before

    def _unsaved(self, storage: Storage, i: int) -> None:
        """Atom ``i``'s kept SUCCESS was not saved: back to RUNNING in memory, as the database has it."""
        storage.states[i] = _S_RUNNING
        storage.results[i] = None
        storage.finished_seq[i] = 0
        ad = self._details[i]
        if ad is not None:
            ad.state, ad.results = _S_RUNNING, None

    def hold(self) -> None:
        """Group commit (see :mod:`flowkit.engines.together`): hold atom writes until commit_held."""
        self.flush_deferred()
        self._held = {}

    def commit_held(self) -> None:
        """The held atom writes in one transaction on the kept connection (one commit; as durable as
        each would have been alone), then kept like any atom write until a durable point."""
        held, self._held = self._held, None
        if not held:
            return
        conn, fence = self._connection(), self.fence

        def unit() -> None:
            for uuid, values in held.items():
                if not conn.update_row(ATOMS, uuid, values, fence):
                    self._missing(ATOMS, uuid)  # and the whole transaction is rolled back

        try:
            conn.run_together(unit)
            if self._relaxed:
                for uuid, values in held.items():
                    self._keep(conn, uuid, values)
        except BaseException:
            self.close()
            raise

    def _missing(self, table: str, uuid: str) -> NoReturn:
        """A row this recorder writes was not found: a newer claim's fence refused it, or it is gone."""
        if self.fence is not None:
            self._check_fence()
        raise StorageError(
            f"{table} row {uuid} of flow detail {self.flow_detail.name!r} is gone from "
            f"{self.backend.display_url} (was its logbook destroyed while the flow ran?)"
        )

    def _keep(self, conn: Connection, uuid: str, values: dict[str, Any]) -> None:
        """Remember an asynchronously committed atom write until a durable point covers it.

        A durable commit covers the earlier commits of its own session only: a database server that
        crashed took the unflushed ones of its sessions with it, and the engine, reconnected, went on.
        So when this write needed a new session while writes of an older one are kept, they are all
        written again at once, durably (nothing extra on the normal path: one dict update; a flush
        every :data:`KEEP_MAX` atoms).
        """
        kept = self._kept
        if not kept:
            self._kept_session = conn.session
        if conn.session == self._kept_session:
            old = kept.get(uuid)
            if old is not None:
                old.update(values)
                return
            if len(kept) < KEEP_MAX - 1:
                kept[uuid] = values
                return
        # a durable point now: the kept rows were written on a session that is gone, or too many are
        # kept. This write is made again in it, last: a transaction that writes nothing flushes nothing.
        if not self._flush(conn, [(ATOMS, uuid, values)]):
            self._missing(ATOMS, uuid)

    def _flush(self, conn: Connection, rows: list[WrittenRow]) -> bool:
        """A durable point: one durable transaction on the kept connection, ending with ``rows`` (the
        flow row, or an atom's; a SUCCESS kept for pairing before it). If the session it runs on is not
        the one the kept atom writes were made on (the connection was lost since), those rows are
        written again in it first, as the engine has them. Returns whether every row was found.

        With nothing kept, or on the session of the kept writes (the usual case), it is
        ``Connection.write_rows`` / ``write_durable``: on PostgreSQL one message. When that session
        turns out to be gone, it is all made the long way.
        """
        kept, fence = self._kept, self.fence

        def unit() -> bool:
            if kept and conn.session != self._kept_session:
                for uuid, values in kept.items():
                    if not conn.update_row(ATOMS, uuid, values, fence):
                        self._missing(ATOMS, uuid)  # and the whole transaction is rolled back
            return conn.update_in_order(rows, fence)

        found: bool | None = None
        if not kept:
            found = conn.write_rows(rows, fence, durable=True)
        elif conn.session == self._kept_session:
            found = conn.write_durable(rows, fence, self._kept_session)
        if found is None:  # the session of the kept writes is gone: they may be lost with it
            found = conn.run_durable(unit)
        kept.clear()
        self._kept_session = conn.session
        return found

    def _check_fence(self) -> None:
        """After a fenced write found no row: raise ClaimLost if a newer claim raised the flow's fence
        (only this failure path reads it; a missing row is told apart by the caller).

        A fence found lower than this recorder's is not a newer claim: the database lost the set-up
        that raised it (a server crash before the flow's first durable commit; see
        :meth:`~flowkit.persistence.backends.base.Connection.run_setup`). That is a StorageError, not
        ClaimLost: the claim is still this conductor's, which gives the job back for a fresh start.
        """
        fd = self.flow_detail
        with self.backend.get_connection() as conn:
            rows = conn.run(lambda: conn.select_rows(FLOWS, "uuid", [fd.uuid]))
        found = int(rows[0].get("fence", 0)) if rows else None
        if found is not None and found < (self.fence or 0):
            self.close()
            raise StorageError(
                f"flow detail {fd.name!r} ({fd.uuid}): its fence is {found}, below this claim's "
                f"{self.fence}: {self.backend.display_url} lost the flow's set-up (a server restart?)"
            )
        if found is not None and found != self.fence:
            self.close()
            raise ClaimLost(fd.name, fd.uuid, self.fence or 0, found)

    def _raise_fence(self, conn: Connection) -> None:
        """Take the flow over for this recorder's token (inside the restore's transaction)."""
        token, fd = self.fence, self.flow_detail
        assert token is not None
        found = conn.raise_fence(fd.uuid, token)
        if found is not None and found != token:
            raise ClaimLost(fd.name, fd.uuid, token, found)

    # -- Recorder -----------------------------------------------------------------------------------

    def restore(self, storage: Storage) -> None:
        # Where the backend says so, on the connection the run's writes go through next (given back at
        # once, which costs it nothing there): one database connection per run, whose statements are
        # still prepared from the last run (see Backend.setup_on_writer)
        conn = self._connection() if self.backend.setup_on_writer else self.backend.get_connection()
        try:
            conn.validate()
            # one transaction: all of it or nothing
            conn.run_setup(lambda: self._restore(conn, storage), fenced=self.fence is not None)
        finally:
            conn.close()
        fd = self.flow_detail
        saved_state = fd.state or FlowState.PENDING  # None: a new flow detail no engine has run yet
        storage.flow_state = FlowState.SUSPENDED if saved_state in _INTERRUPTED else saved_state
        if self._unfinished:
            LOG.warning(
                "flow detail %r (%s) was saved %s while its atoms %s were not finished (a lost write?): "
                "resuming it as interrupted",
                fd.name,
                fd.uuid,
                saved_state.value,
                ", ".join(self._unfinished),
            )
            storage.flow_state = FlowState.SUSPENDED
        storage.flow_failures = dict(fd.failures)

    def _restore(self, conn: Connection, storage: Storage) -> None:
        """Read the saved flow detail (or save a new one) and fill ``storage``; safe to run again."""
        fd, codec = self.flow_detail, self._codec
        book_uuid = self.book.uuid if self.book is not None else fd.parent_uuid
        # None: not asked yet; a logbook made below for a flow detail without one is new (a new uuid)
        book_saved: bool | None = False if book_uuid is None else None
        if self.fence is not None:  # fence first, so what is read is what the older claim left
            fence, saved = conn.take_flow_detail(fd.uuid, self.fence)
            if fence is not None and fence != self.fence:
                raise ClaimLost(fd.name, fd.uuid, self.fence, fence)
        else:  # most often a new flow detail: two probes in one statement, no row read
            if book_uuid is None:
                flow_saved = conn.have_rows([(FLOWS, fd.uuid)])[0]
            else:
                flow_saved, book_saved = conn.have_rows([(FLOWS, fd.uuid), (LOGBOOKS, book_uuid)])
            found = conn.read_flow_details("uuid", [fd.uuid]) if flow_saved else []
            saved = found[0] if found else None
        self._unfinished = [] if saved is None else _unfinished(saved, storage.compiled.names)
        if saved is None and self.saved:
            raise NotFound(f"flow detail {fd.uuid} is not in {self.backend.display_url}")
        if saved is None:  # first run: save the flow detail (and its logbook, if that is new too)
            book = self.book if self.book is not None else LogBook(fd.name, uuid=fd.parent_uuid)
            if book.find(fd.uuid) is None:
                book.add(fd)
            if book_saved is None:
                book_saved = bool(conn.select_rows(LOGBOOKS, "uuid", [book.uuid]))
            if not book_saved:
                conn.upsert_rows(LOGBOOKS, [codec.logbook_row(book)])
            known = {ad.name: ad for ad in fd}
        else:
            fd.state, fd.failures, fd.parent_uuid = saved.state, saved.failures, saved.parent_uuid
            fd.name = saved.name
            fd.meta = {**saved.meta, **fd.meta}
            known = {ad.name: ad for ad in saved}
        new = self._load_atoms(storage, known, fresh=saved is None)
        storage.store = {**fd.meta.get("store", {}), **storage.store}
        fd.meta["store"] = storage.store
        if saved is None:
            conn.upsert_rows(FLOWS, [codec.flow_row(fd)])
        elif fd.meta != saved.meta:
            conn.update_row(
                FLOWS, fd.uuid, {"meta": codec.dump(fd.meta, f"flow {fd.name}", "the store or meta")}
            )
        columns = codec.atom_columns(new)
        if self.fence is not None:
            columns["fence"] = [self.fence] * len(new)
        conn.upsert_columns(ATOMS, columns)
        if saved is None and self.fence is not None:  # the flow row is new: take it now
            self._raise_fence(conn)

    def _load_atoms(self, storage: Storage, known: dict[str, AtomDetail], fresh: bool) -> list[AtomDetail]:
        """Fill ``storage`` from the saved atom details; return the details that must be created."""
        c, fd = storage.compiled, self.flow_detail
        self._details = [None] * len(c.atoms)
        fd.clear_atoms()
        new: list[AtomDetail] = []
        uuid_of = flow_atom_uuids(fd.uuid)
        versions = version_texts()
        for i in c.atom_ids():
            name = c.names[i]
            ad = known.pop(name, None)
            save = fresh
            if ad is None:
                cls = RetryDetail if c.kinds[i] == RETRY else TaskDetail
                version = versions(getattr(c.atoms[i], "version", None))
                ad = cls.unsaved(name, uuid_of(name), version, i)
                save = True
            elif c.kinds[i] == RETRY and not isinstance(ad, RetryDetail):
                # saved as a task by an older version of the flow: keep its state, start a history
                ad = RetryDetail(ad.name, ad.uuid, state=ad.state, results=ad.results, position=ad.position)
                save = True
            storage.atom_uuids[i] = ad.uuid
            storage.states[i] = ad.state
            storage.results[i] = ad.results
            storage.failures[i] = ad.failure
            storage.revert_results[i] = ad.revert_results
            storage.revert_failures[i] = ad.revert_failure
            storage.finished_seq[i] = ad.seq
            if ad.state is _S_FAILURE and ad.started_at is None:  # failed before execute was called
                storage.never_started.add(i)
            if isinstance(ad, RetryDetail) and c.kinds[i] == RETRY:
                storage.histories[i] = ad.history
            if save:
                new.append(ad)
            fd.add(ad)
            self._details[i] = ad
        for ad in known.values():  # saved atoms this flow no longer has: kept, not touched
            fd.add(ad)
        storage._seq = max(storage.finished_seq, default=0)
        states = storage.states
        for i in c.order:  # junctions are never saved: done when everything before them is
            if c.kinds[i] == JUNCTION:
                done = all(states[p] in ATOM_DONE for p in c.preds[i])
                states[i] = S.SUCCESS if done else S.PENDING
        return new

    def atom_changed(self, storage: Storage, i: int, state: AtomState) -> None:
        ad = self._details[i]
        assert ad is not None, "junctions are never recorded"
        now = datetime.now(UTC)  # utcnow(), without its call
        history = storage.histories.get(i)
        # The two transitions of every task that runs (RUNNING, then SUCCESS) build their columns
        # straight away: the same values the generic path below makes through Codec.atom_values,
        # without a model-fields dict and a converter call per field (they are most of the Python
        # work around each statement). Encoded first: a result that does not encode changes nothing.
        # A column to be cleared that the row has NULL already, or an intention it has already (``ad`` is
        # what this recorder restored or wrote), is left out: each bind is driver work per transition
        # (a None costs sqlite3 several times a string).
        if history is None:
            if state is _S_RUNNING:
                attempts = ad.attempts + 1
                values = {"state": _RUNNING, "attempts": attempts, "started_at": now}
                if ad.intention is not _INTENT_EXECUTE:  # (a new row's is: a bind fewer)
                    values["intention"] = _EXECUTE
                if ad.finished_at is not None:
                    values["finished_at"] = None
                ad.state, ad.intention, ad.attempts = state, _INTENT_EXECUTE, attempts
                ad.started_at, ad.finished_at = now, None
                self._write_atom(ad.uuid, values)
                return
            if state is _S_SUCCESS:
                results, seq = storage.results[i], storage.finished_seq[i]
                values = {"state": _SUCCESS, "seq": seq, "finished_at": now}
                if results is not None or ad.results is not None:
                    values["results"] = self._codec.dump(results, ad.name, "the result")
                ad.state, ad.results, ad.seq, ad.finished_at = state, results, seq, now
                if self.pair_next and self._deferred is None:  # kept for the next write (see flush_deferred)
                    self.pair_next = False
                    self._deferred = (storage, i, ad.uuid, values)
                    return
                self._write_atom(ad.uuid, values)
                return
        fields: dict[str, Any] = {"state": state}
        if state is S.RUNNING:
            fields.update(
                intention=Intention.EXECUTE, attempts=ad.attempts + 1, started_at=now, finished_at=None
            )
        elif state is S.SUCCESS:
            fields.update(results=storage.results[i], seq=storage.finished_seq[i], finished_at=now)
        elif state is S.FAILURE:
            fields.update(failure=storage.failures[i], finished_at=now)
        elif state is S.REVERTING:
            fields.update(intention=Intention.REVERT, revert_started_at=now, revert_finished_at=None)
        elif state is S.REVERTED:
            fields.update(revert_results=storage.revert_results[i], revert_finished_at=now)
        elif state is S.REVERT_FAILURE:
            fields.update(revert_failure=storage.revert_failures[i], revert_finished_at=now)
        elif state is S.PENDING:
            fields.update(_CLEARED)
            if WAIT_META in ad.meta:  # a durable wait's deadline belongs to the attempt that ends here
                fields["meta"] = {k: v for k, v in ad.meta.items() if k != WAIT_META}
        elif state is S.RETRYING:
            fields["intention"] = Intention.RETRY
        elif state is S.IGNORE:
            fields["intention"] = Intention.IGNORE
        if history is not None:
            fields["history"] = history
        values = self._codec.atom_values(fields, ad.name)
        for key, value in fields.items():
            setattr(ad, key, value)
        self._write(ATOMS, ad.uuid, values)

    def atom_meta(self, i: int) -> dict[str, Any]:
        """Atom ``i``'s saved meta (a durable wait keeps its deadline and event there)."""
        ad = self._details[i]
        return {} if ad is None else ad.meta

    def save_atom_meta(self, i: int, meta: dict[str, Any]) -> None:
        """Save atom ``i``'s meta (committed before this returns, like a state change)."""
        ad = self._details[i]
        assert ad is not None, "junctions are never recorded"
        values = self._codec.atom_values({"meta": meta}, ad.name)
        ad.meta = meta
        self._write(ATOMS, ad.uuid, values)

    def flow_changed(self, storage: Storage, state: FlowState) -> None:
        fd = self.flow_detail
        before = fd.state
        fd.state, fd.failures, fd.updated_at = state, dict(storage.flow_failures), utcnow()
        values = {
            "state": state.value,
            "failures": self._codec.flow_failures(fd.failures, fd.name),
            "updated_at": fd.updated_at,
        }
        # A fenced flow's start (RUNNING, RESUMING) is no durable point: it carries no failure, and a
        # database crash that lost it lost the set-up's fence raise before it too (the log is one
        # sequence), which the flow's next write, refused, reports (_check_fence). So no disk flush
        # lies between a conductor's claim and the flow's first task; the run's end flushes it all.
        # Nor is any flow's start where a crash that loses it loses the engine too (SQLite in process:
        # Backend.start_is_durable).
        durable = state not in _STARTS or (self.fence is None and self.backend.start_is_durable)
        pair, self.pair_start = self.pair_start, False
        if pair and not durable and self._start is None and self._deferred is None and self._held is None:
            self._start = (storage, storage.flow_state, before, values)  # written with the next write
            return
        try:
            self._write(FLOWS, fd.uuid, values, durable)
        finally:
            if state in _RELEASE:
                self.close()

    def meta_changed(self, storage: Storage, i: int | None, meta: dict[str, Any]) -> None:
        """Merge listener metadata into the atom's (or flow's) saved ``meta``; the flow's keeps its
        ``store`` and ``factory`` entries."""
        fd = self.flow_detail
        try:
            if i is None:
                fd.meta = {**fd.meta, **meta}
                self._write(
                    FLOWS, fd.uuid, {"meta": self._codec.dump(fd.meta, f"flow {fd.name}", "the meta")}
                )
                return
            ad = self._details[i]
            if ad is not None:
                ad.meta = {**ad.meta, **meta}
                self._write(ATOMS, ad.uuid, self._codec.atom_values({"meta": ad.meta}, ad.name))
        finally:
            if fd.state in _RELEASE:  # written after the run let its connection go: give it back again
                self.close()

    def retry_changed(self, storage: Storage, i: int) -> None:
        ad = self._details[i]
        assert isinstance(ad, RetryDetail)
        values = self._codec.atom_values({"history": storage.histories[i]}, ad.name)
        self._write(ATOMS, ad.uuid, values)


def _unfinished(saved: FlowDetail, names: list[str]) -> list[str]:
    """The atoms (of this flow) whose saved state a flow saved as finished cannot have.

    A recorder never saves such a flow (its final state is written after every atom's, durably); a
    database that lost writes can still show one. Resumed as interrupted, the engine then runs (or
    reverts) what is left instead of taking the flow as done.
    """
    final = _FINAL_ATOMS.get(saved.state) if saved.state is not None else None
    if final is None:
        return []
    ours = set(names)
    return sorted(ad.name for ad in saved if ad.name in ours and ad.state not in final)
