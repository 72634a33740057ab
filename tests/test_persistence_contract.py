"""One contract, every persistence backend: memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowkit.exceptions import NotFound, NotSerializableError, StorageError, UnknownBackendError
from flowkit.failure import Failure
from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, Intention, LogBook, RetryDetail, TaskDetail
from flowkit.retry import History
from flowkit.states import AtomState, FlowState


def _failure(message: str = "boom") -> Failure:
    try:
        raise ValueError(message)
    except ValueError:
        return Failure()


def _book() -> tuple[LogBook, FlowDetail]:
    book = LogBook("cluster-42", meta={"owner": "ops"})
    fd = FlowDetail("create-cluster", meta={"store": {"nodes": 3}})
    book.add(fd)
    return book, fd


def test_upgrade_is_idempotent_and_validates(backend: Backend) -> None:
    with backend.get_connection() as conn:
        conn.upgrade()
        conn.upgrade()
        conn.validate()


def test_save_and_get_a_logbook_round_trip(backend: Backend) -> None:
    book, fd = _book()
    now = datetime.now(UTC)
    failure = _failure()
    fd.state = FlowState.REVERTING
    fd.failures = {"b": failure}
    a = fd.add(TaskDetail("a", results={"id": 7, "tags": ["x"]}, state=AtomState.SUCCESS, attempts=1, seq=1))
    a.started_at, a.finished_at = now, now + timedelta(seconds=1.5)
    a.version, a.meta = "1.0", {"note": "first"}
    b = fd.add(TaskDetail("b", state=AtomState.FAILURE, failure=failure, intention=Intention.REVERT))
    b.revert_failure = _failure("revert went wrong")
    history = History([(1, {"b": failure}), (2, {})])
    r = fd.add(RetryDetail("r", history=history, results=2, state=AtomState.SUCCESS))
    with backend.get_connection() as conn:
        assert conn.save_logbook(book) is book
        got = conn.get_logbook(book.uuid)
    assert (got.name, got.uuid, got.meta, len(got)) == ("cluster-42", book.uuid, {"owner": "ops"}, 1)
    assert got.created_at.tzinfo is not None and abs(got.created_at - book.created_at) < timedelta(seconds=1)
    gfd = got.find(fd.uuid)
    assert gfd is not None and got.find("no-such-uuid") is None
    assert (gfd.name, gfd.state, gfd.meta, gfd.parent_uuid) == (
        fd.name,
        FlowState.REVERTING,
        fd.meta,
        book.uuid,
    )
    assert gfd.failures["b"] == failure
    assert [ad.name for ad in gfd] == ["a", "b", "r"]
    ga = gfd.find(a.uuid)
    assert isinstance(ga, TaskDetail)
    assert (ga.results, ga.state, ga.attempts, ga.seq, ga.version, ga.meta) == (
        {"id": 7, "tags": ["x"]},
        AtomState.SUCCESS,
        1,
        1,
        "1.0",
        {"note": "first"},
    )
    assert (
        ga.duration == pytest.approx(1.5) and ga.started_at is not None and ga.started_at.tzinfo is not None
    )
    gb = gfd.find_by_name("b")
    assert gb is not None and gb.failure == failure and gb.intention is Intention.REVERT
    assert gb.failure.exception_str == "boom" and gb.failure.check(ValueError)
    assert gb.revert_failure is not None and gb.revert_failure.exception_str == "revert went wrong"
    gr = gfd.find(r.uuid)
    assert isinstance(gr, RetryDetail) and gr.results == 2
    assert list(gr.history.provides_iter()) == [1, 2] and gr.history[0][1]["b"] == failure


def test_values_come_back_as_json(backend: Backend) -> None:
    book, fd = _book()
    fd.add(TaskDetail("a", results=("x", 1), revert_results={1: "one"}))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        ad = conn.get_flow_detail(fd.uuid).find_by_name("a")
    assert ad is not None and ad.results == ["x", 1] and ad.revert_results == {"1": "one"}


def test_a_value_that_is_not_json_is_refused_naming_the_atom(backend: Backend) -> None:
    book, fd = _book()
    fd.add(TaskDetail("make-server", results=object()))
    with backend.get_connection() as conn, pytest.raises(NotSerializableError, match="make-server"):
        conn.save_logbook(book)
    with backend.get_connection() as conn, pytest.raises(NotFound):
        conn.get_logbook(book.uuid)  # nothing half saved


def test_saving_again_merges_and_updates(backend: Backend) -> None:
    book, fd = _book()
    a = fd.add(TaskDetail("a"))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        second = book.add(FlowDetail("second"))
        a.state, a.results = AtomState.SUCCESS, 42
        conn.save_logbook(book)
        got = conn.get_logbook(book.uuid)
    assert {f.name for f in got} == {"create-cluster", "second"} and got.find(second.uuid) is not None
    ga = got.find(fd.uuid).find(a.uuid)  # type: ignore[union-attr]
    assert ga is not None and (ga.state, ga.results) == (AtomState.SUCCESS, 42)


def test_listing_logbooks_and_flow_details(backend: Backend) -> None:
    books = []
    with backend.get_connection() as conn:
        for i in range(3):
            book = LogBook(f"book-{i}")
            for j in range(i):
                book.add(FlowDetail(f"flow-{i}-{j}"))
            conn.save_logbook(book)
            books.append(book)
        listed = conn.get_logbooks()
        assert [b.uuid for b in listed] == [b.uuid for b in books]
        assert [len(b) for b in listed] == [0, 1, 2]
        assert sorted(f.name for f in conn.get_flow_details(books[2].uuid)) == ["flow-2-0", "flow-2-1"]
        only = next(iter(books[1]))
        assert conn.get_flow_detail(only.uuid).name == "flow-1-0"
        with pytest.raises(NotFound, match="no logbook"):
            conn.get_flow_details("no-such-book")
        with pytest.raises(NotFound, match="no flow detail"):
            conn.get_flow_detail("no-such-flow")
        with pytest.raises(NotFound, match="no logbook"):
            conn.get_logbook("no-such-book")


def test_destroy_logbook_removes_everything_in_it(backend: Backend) -> None:
    book, fd = _book()
    fd.add(TaskDetail("a"))
    other, other_fd = _book()
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        conn.save_logbook(other)
        conn.destroy_logbook(book.uuid)
        with pytest.raises(NotFound):
            conn.get_flow_detail(fd.uuid)
        with pytest.raises(NotFound):
            conn.destroy_logbook(book.uuid)
        assert [b.uuid for b in conn.get_logbooks()] == [other.uuid]
        assert conn.get_flow_detail(other_fd.uuid).name == "create-cluster"


def test_clear_all(backend: Backend) -> None:
    with backend.get_connection() as conn:
        for _ in range(2):
            conn.save_logbook(_book()[0])
        conn.clear_all()
        assert conn.get_logbooks() == []


def test_a_connection_works_without_with(backend: Backend) -> None:
    book, _ = _book()
    conn = backend.get_connection()
    conn.save_logbook(book)
    assert conn.get_logbook(book.uuid).name == "cluster-42"
    conn.close()
    assert conn.get_logbook(book.uuid).name == "cluster-42"  # usable again after close
    conn.close()


def test_update_flow_and_atom_details(backend: Backend) -> None:
    book, fd = _book()
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        fd.state = FlowState.RUNNING
        a = fd.add(TaskDetail("a"))
        conn.update_flow_details(fd)
        a.state, a.results = AtomState.SUCCESS, "done"
        conn.update_atom_details(a)
        got = conn.get_flow_detail(fd.uuid)
        assert got.state is FlowState.RUNNING
        ga = got.find(a.uuid)
        assert ga is not None and (ga.state, ga.results) == (AtomState.SUCCESS, "done")
        with pytest.raises(StorageError, match="in no logbook"):
            conn.update_flow_details(FlowDetail("orphan"))


def test_a_flow_detail_whose_logbook_is_not_saved_is_refused(backend: Backend) -> None:
    fd = LogBook("never-saved").add(FlowDetail("f"))
    with backend.get_connection() as conn, pytest.raises(StorageError):
        conn.update_flow_details(fd)


def test_two_atoms_with_one_name_in_one_flow_are_refused(backend: Backend) -> None:
    book, fd = _book()
    fd.add(TaskDetail("same"))
    fd.add(TaskDetail("same"))
    with backend.get_connection() as conn, pytest.raises(StorageError):
        conn.save_logbook(book)


def test_atom_details_iterate_in_flow_order(backend: Backend) -> None:
    book, fd = _book()
    names = [f"t{i}" for i in range(12)]
    for name in names:
        fd.add(TaskDetail(name))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        assert [ad.name for ad in conn.get_flow_detail(fd.uuid)] == names


class _SetSerializer:
    """A pluggable serializer that also stores sets (as sorted lists under a marker)."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, default=lambda v: {"__set__": sorted(v)})

    def loads(self, text: str) -> Any:
        return json.loads(text, object_hook=lambda d: set(d["__set__"]) if "__set__" in d else d)


def test_a_pluggable_serializer(backend: Backend) -> None:
    custom = backends.fetch(backend.url, serializer=_SetSerializer())
    if backend.url.startswith("memory"):
        custom = type(backend)(backend.url, _SetSerializer())  # type: ignore[call-arg]
    book, fd = _book()
    fd.add(TaskDetail("a", results={"zones": {"az2", "az1"}}))
    with custom.get_connection() as conn:
        conn.save_logbook(book)
        ad = conn.get_flow_detail(fd.uuid).find_by_name("a")
    assert ad is not None and ad.results == {"zones": {"az1", "az2"}}
    custom.close()


def test_have_rows_says_which_rows_exist_in_the_order_asked(backend: Backend) -> None:
    book, fd = _book()
    a = fd.add(TaskDetail("a"))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        other = str(uuid.uuid4())
        asked = [
            ("flowdetails", fd.uuid),
            ("logbooks", other),
            ("logbooks", book.uuid),
            ("atomdetails", a.uuid),
        ]
        assert conn.run(lambda: conn.have_rows(asked)) == [True, False, True, True]
        assert conn.run(lambda: conn.have_rows([("flowdetails", book.uuid)])) == [
            False
        ]  # another table's uuid
        conn.destroy_logbook(book.uuid)
        assert conn.run(lambda: conn.have_rows(asked)) == [False, False, False, False]


def test_unknown_scheme() -> None:
    with pytest.raises(UnknownBackendError, match="redis://"):
        backends.fetch("redis://localhost")


def test_postgresql_means_psycopg2() -> None:
    from flowkit.persistence.backends.sqlalchemy import SQLOptions

    def driver(url: str) -> str:
        return SQLOptions.from_url(url).database.url.drivername

    assert driver("postgresql://u@h/db") == "postgresql+psycopg2"
    assert driver("postgres://u@h/db") == "postgresql+psycopg2"
    assert driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2"
    assert driver("sqlite:///x.db") == "sqlite"


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path}/w.db")
    with backend.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    backend.close()
