"""Listing flows across logbooks (filters, keyset paging), uuid prefixes, and revert timings apart."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flowkit import LinearFlow, engines
from flowkit.exceptions import NotFound
from flowkit.persistence import queries
from flowkit.persistence.backends import Backend
from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.queries import AmbiguousPrefix, BadQuery, FlowFilter
from tests.console_flows import Fail, Gated
from tests.support.console import N_FLOWS, bulk_flows
from tests.support.persistence import BACKEND_KINDS, backend_url, fresh_backend

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATES = ("SUCCESS", "RUNNING", "REVERTED", "FAILURE")


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = fresh_backend(backend_url(request.param, request, tmp_path))
    yield b
    b.close()


def _flow(i: int, *, same_second: bool = False) -> FlowDetail:
    created = T0 + timedelta(seconds=0 if same_second else i)
    name = f"deploy-{i}" if i % 3 else f"Backup-{i}"
    return FlowDetail(name, str(uuidlib.uuid4()), state=STATES[i % 4], created_at=created, updated_at=created)


def _save(backend: Backend, flows: list[FlowDetail], books: int = 3) -> None:
    with backend.get_connection() as conn:
        for b in range(books):
            book = LogBook(f"book-{b}")
            for fd in flows[b::books]:
                book.add(fd)
            conn.save_logbook(book)


def _all_pages(backend: Backend, flt: FlowFilter | None, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = queries.list_flows(backend, flt, limit=limit, cursor=cursor)
        pages.append([s.uuid for s in page.flows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_cover_every_flow_once_newest_first(backend: Backend) -> None:
    flows = [_flow(i) for i in range(23)]
    _save(backend, flows)
    pages = _all_pages(backend, None, 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    expected = [fd.uuid for fd in sorted(flows, key=lambda f: f.created_at, reverse=True)]
    assert [u for p in pages for u in p] == expected
    first = queries.list_flows(backend, limit=1).flows[0]
    assert (first.name, first.state, first.logbook_name) == ("deploy-22", "REVERTED", "book-1")
    assert first.created_at == T0 + timedelta(seconds=22)


def test_flows_created_in_the_same_instant_are_paged_by_uuid_without_loss(backend: Backend) -> None:
    flows = [_flow(i, same_second=True) for i in range(11)]
    _save(backend, flows)
    got = [u for p in _all_pages(backend, None, 4) for u in p]
    assert got == sorted((fd.uuid for fd in flows), reverse=True)


def test_filters_by_state_name_and_since(backend: Backend) -> None:
    flows = [_flow(i) for i in range(40)]
    _save(backend, flows)

    def names(flt: FlowFilter) -> set[str]:
        return {s.name for s in queries.list_flows(backend, flt, limit=1000).flows}

    assert names(FlowFilter(state="REVERTED")) == {fd.name for fd in flows if fd.state.value == "REVERTED"}
    assert names(FlowFilter(name="backup")) == {fd.name for fd in flows if fd.name.startswith("Backup")}
    since = T0 + timedelta(seconds=30)
    assert names(FlowFilter(since=since)) == {fd.name for fd in flows if fd.created_at >= since}
    both = FlowFilter(state="SUCCESS", name="DEPLOY", since=T0 + timedelta(seconds=10))
    assert names(both) == {
        fd.name
        for fd in flows
        if fd.state.value == "SUCCESS" and fd.name.startswith("deploy") and fd.created_at >= both.since  # type: ignore[operator]
    }
    paged = _all_pages(backend, FlowFilter(state="RUNNING"), 3)
    assert sum(len(p) for p in paged) == 10 and all(len(p) == 3 for p in paged[:-1])


def test_a_name_filter_takes_percent_and_underscore_literally(backend: Backend) -> None:
    _save(backend, [FlowDetail("a_b", state="SUCCESS"), FlowDetail("axb", state="SUCCESS")], books=1)
    assert [s.name for s in queries.list_flows(backend, FlowFilter(name="a_b")).flows] == ["a_b"]
    assert queries.list_flows(backend, FlowFilter(name="%")).flows == []


def test_bad_filters_limits_and_cursors_are_named() -> None:
    with pytest.raises(BadQuery, match="unknown flow state 'DONE'"):
        FlowFilter(state="DONE")
    with pytest.raises(BadQuery, match="no time zone"):
        FlowFilter(since=datetime(2026, 1, 1))
    backend = fresh_backend("memory://")
    with pytest.raises(BadQuery, match="limit must be between 1 and 1000, not 0"):
        queries.list_flows(backend, limit=0)
    with pytest.raises(BadQuery, match="cursor 'nonsense' is not one a flow listing gave out"):
        queries.list_flows(backend, cursor="nonsense")


def test_a_uuid_prefix_finds_one_flow_or_says_why_not(backend: Backend) -> None:
    a = FlowDetail("a", "abc00000-0000-4000-8000-000000000001", state="SUCCESS")
    b = FlowDetail("b", "abc00000-0000-4000-8000-000000000002", state="SUCCESS")
    _save(backend, [a, b], books=1)
    assert queries.find_flow(backend, "abc00000-0000-4000-8000-000000000002").name == "b"
    with pytest.raises(
        AmbiguousPrefix, match=r"'abc' starts several flow uuids \(abc00000-.*001, abc00000-.*002\)"
    ):
        queries.find_flow(backend, "abc")
    with pytest.raises(NotFound, match="no flow whose uuid starts with 'abd'"):
        queries.find_flow(backend, "abd")
    with pytest.raises(BadQuery, match="'x%' is not a flow uuid"):
        queries.find_flow(backend, "x%")


def test_atom_marks_follow_a_run_and_revert_is_timed_apart_from_execute(
    backend: Backend, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        (tmp_path / name).touch()
    flow = LinearFlow("doomed").add(Gated("first"), Gated("second"), Fail("explode"))
    book = LogBook("b")
    fd = FlowDetail("doomed")
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    engine = engines.load(flow, backend=backend, book=book, flow_detail=fd, store={"gate_dir": str(tmp_path)})
    with pytest.raises(RuntimeError, match="explode cannot go on"):
        engine.run()
    state, marks = queries.atom_marks(backend, fd.uuid)
    assert state == "REVERTED"
    assert {n: mk[0] for n, mk in marks.items()} == {
        "first": "REVERTED",
        "second": "REVERTED",
        "explode": "REVERTED",
    }
    saved = queries.find_flow(backend, fd.uuid[:8])
    first = next(a for a in saved if a.name == "first")
    assert first.duration is not None and first.revert_duration is not None
    assert first.revert_duration >= 0.05  # Gated.revert sleeps that long; execute was near instant
    assert first.started_at is not None and first.revert_started_at is not None
    assert first.revert_started_at >= first.finished_at  # type: ignore[operator]
    with pytest.raises(NotFound):
        queries.atom_marks(backend, str(uuidlib.uuid4()))


# -- 10,000 flows: every page is an index range scan, never a sort of the table ------------------------


def _plan(backend: SQLAlchemyBackend, stmt: sa.Select[object]) -> str:
    compiled = stmt.compile(backend.engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if backend.engine.dialect.name == "sqlite" else "EXPLAIN "
    with backend.engine.connect() as c:
        return "\n".join(" ".join(str(v) for v in row) for row in c.exec_driver_sql(prefix + str(compiled)))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_paging_ten_thousand_flows_scans_the_index(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = fresh_backend(backend_url(kind, request, tmp_path))
    assert isinstance(backend, SQLAlchemyBackend)
    try:
        bulk_flows(backend)
        seen, cursor, cursors = 0, None, []
        while True:
            page = queries.list_flows(backend, limit=500, cursor=cursor)
            seen += len(page.flows)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            cursors.append(cursor)
        assert (seen, len(cursors)) == (N_FLOWS, 19)
        cursor = cursors[len(cursors) // 2]  # page 10 of 20: as cheap as page 1
        for flt, index in (
            (FlowFilter(), "ix_flowkit_flowdetails_created"),
            (FlowFilter(state="FAILURE"), "ix_flowkit_flowdetails_state_created"),
        ):
            plan = _plan(backend, queries.listing_statement(flt, 50, cursor, backend.engine.dialect.name))
            print(plan)
            assert index in plan, plan
            # neither a read of the whole table nor a sort of it: a range of the index, in its order
            assert "SCAN flowkit_flowdetails" not in plan and "Seq Scan on flowkit_flowdetails" not in plan, (
                plan
            )
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
        failed = _all_pages(backend, FlowFilter(state="FAILURE"), 30)
        assert sum(len(p) for p in failed) == N_FLOWS // 50
        running = queries.list_flows(backend, FlowFilter(state="RUNNING"), limit=1000)
        assert len(running.flows) == 1000 and {s.state for s in running.flows} == {"RUNNING"}
    finally:
        backend.close()
