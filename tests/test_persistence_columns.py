"""Atom rows saved column by column (a new flow detail's set-up: ``Codec.atom_columns`` and
``Connection.upsert_columns``) must be the rows ``Codec.atom_row`` and ``upsert_rows`` save, on random
atom details, on every backend."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import random
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.failure import Failure
from flowkit.persistence.backends import Backend, _prepared
from flowkit.persistence.models import AtomDetail, FlowDetail, Intention, LogBook, RetryDetail, TaskDetail
from flowkit.persistence.rows import ATOMS, Codec
from flowkit.retry import History
from flowkit.states import AtomState
from tests.support.persistence import fresh_backend, recorded_statements


def _failure(rng: random.Random) -> Failure:
    try:
        raise ValueError(f"boom {rng.random()}")
    except ValueError as exc:
        return Failure.from_exception(exc)


def _maybe(rng: random.Random, make: Any) -> Any:
    return make() if rng.random() < 0.4 else None


def _random_details(rng: random.Random, n: int) -> list[AtomDetail]:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ads: list[AtomDetail] = []
    for i in range(n):
        retry = rng.random() < 0.2
        kw: dict[str, Any] = {
            "state": rng.choice(list(AtomState)),
            "intention": rng.choice(list(Intention)),
            "results": _maybe(rng, lambda: rng.choice([1, "x", {"k": [1, 2]}, [None], 0.5])),
            "failure": _maybe(rng, lambda: _failure(rng)),
            "revert_results": _maybe(rng, lambda: {"undone": rng.randrange(9)}),
            "revert_failure": _maybe(rng, lambda: _failure(rng)),
            "version": rng.choice([None, "1.0", "2"]),
            "attempts": rng.randrange(3),
            "seq": rng.randrange(5),
            "started_at": _maybe(rng, lambda: when + dt.timedelta(microseconds=rng.randrange(10**9))),
            "finished_at": _maybe(rng, lambda: when + dt.timedelta(seconds=rng.randrange(99))),
            "revert_started_at": _maybe(rng, lambda: when),
            "revert_finished_at": _maybe(rng, lambda: when),
            "meta": rng.choice([None, {}, {"progress": 0.5}]),
            "position": rng.choice([None, i, 0]),
        }
        if retry:
            kw["history"] = rng.choice([History(), History([(1, {"t": _failure(rng)})])])
        ad = (RetryDetail if retry else TaskDetail)(f"a{i}", **kw)
        ads.append(ad)
    return ads


_IDENTITY = ("uuid", "parent_uuid", "name", "kind", "position")
"""Columns that say which atom a row is; every other column is a model field atom_values encodes."""


def _encoded_field_by_field(codec: Codec, ad: AtomDetail, names: list[str]) -> dict[str, Any]:
    """The row of ``ad`` (columns ``names``) through the per-transition encoder (``atom_values``), field
    by field: what ``atom_columns`` must agree with, by another route."""
    fields = {
        name: getattr(ad, name, None) for name in names if name not in _IDENTITY
    }  # (a task: no history)
    row = {"uuid": ad.uuid, "parent_uuid": ad.parent_uuid, "name": ad.name, "kind": ad.kind}
    row["position"] = ad.position or 0
    row.update(codec.atom_values(fields, ad.name))
    return row


def test_atom_columns_encode_each_field_as_a_transition_does() -> None:
    rng, codec = random.Random(13), Codec()
    for n in (0, 1, 2, 7, 50):
        ads = _random_details(rng, n)
        columns = codec.atom_columns(ads)
        assert len(columns) == 20 and all(len(values) == n for values in columns.values())
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        assert rows == [_encoded_field_by_field(codec, ad, list(columns)) for ad in ads]
        assert [codec.atom_row(ad) for ad in ads] == rows  # one atom's row is its column of one


def _saved_atoms(backend: Backend, fd: FlowDetail) -> list[dict[str, Any]]:
    with backend.get_connection() as conn:
        rows = conn.run(lambda: conn.select_rows(ATOMS, "parent_uuid", [fd.uuid]))
    return [{k: v for k, v in row.items() if k not in ("uuid", "parent_uuid")} for row in rows]


def test_upsert_columns_saves_what_upsert_rows_saves(backend: Backend) -> None:
    """Two flow details with the same random atoms, one saved by rows, one by columns; then both
    updated (every row there already: the upsert's update) the same way."""
    rng, codec = random.Random(7), backend.codec
    for n in (1, 3, 40):
        book, by_rows, by_columns = LogBook("b"), FlowDetail("rows"), FlowDetail("columns")
        book.add(by_rows)
        book.add(by_columns)
        with backend.get_connection() as conn:
            conn.save_logbook(book)
        seed = rng.random()
        for fd in (by_rows, by_columns):
            for ad in _random_details(random.Random(seed), n):
                fd.add(ad)
        for again in (False, True):
            if again:  # the same changes to both, over the rows saved
                for fd in (by_rows, by_columns):
                    changes = random.Random(seed + 1)
                    for ad in fd:
                        ad.state = changes.choice(list(AtomState))
                        ad.results = changes.choice([None, 3, "y"])
            rows = [codec.atom_row(ad) for ad in by_rows]
            columns = codec.atom_columns(list(by_columns))
            with backend.get_connection() as conn:
                conn.run(functools.partial(conn.upsert_rows, ATOMS, rows))
                conn.run(functools.partial(conn.upsert_columns, ATOMS, columns))
            saved = _saved_atoms(backend, by_rows)
            assert len(saved) == n
            assert _saved_atoms(backend, by_columns) == saved


class Noop(Task):
    def execute(self) -> int:
        return 7


def test_a_new_flow_details_atoms_are_saved_as_its_atom_rows(backend: Backend) -> None:
    """The recorder's set-up saves a new flow detail's atoms column by column: the rows read back are
    ``atom_row`` of its atom details; on SQLite they go in multi-row statements (16 rows each), on
    PostgreSQL in one statement (a column's values one array), so one round trip for them all."""
    n = 37
    sql = hasattr(backend, "engine")
    with recorded_statements(backend) if sql else contextlib.nullcontext([]) as seen:
        engine = engines.load(LinearFlow("f").add(*(Noop(f"t{i}") for i in range(n))), backend=backend)
        engine.prepare()
    fd = engine._recorder.flow_detail  # type: ignore[attr-defined]
    with backend.get_connection() as conn:
        saved = conn.run(lambda: conn.select_rows(ATOMS, "parent_uuid", [fd.uuid]))
    expected = [backend.codec.atom_row(ad) for ad in fd]
    for row in saved:
        row.pop("fence", None)
    assert saved == expected
    if backend.url.startswith("sqlite"):
        inserts = [t for t in seen if t.startswith("INSERT INTO flowkit_atomdetails")]
        assert len(inserts) == 4  # 16 + 16 + 4 + 1
    elif backend.url.startswith("postgresql"):
        # every message that executes a prepared insert into the atom rows, whether it was prepared
        # in the same message or on this connection before (a split into chunks is several of them)
        names = [
            name
            for name, text in backend.updates._unnests.values()  # type: ignore[attr-defined]
            if "INTO flowkit_atomdetails" in text and "unnest(" in text
        ]
        inserts = [t for t in seen if any(f"EXECUTE {name} " in t for name in names)]
        assert len(names) == 1 and len(inserts) == 1


def test_postgresql_upserts_rows_in_messages_of_a_bounded_size(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's column-wise upsert sends at most ROWS_PER_SERVER_INSERT rows a statement (a huge flow's
    set-up is several messages of a bounded size, on one prepared statement): every row reads back as
    its own across the statements, inserted and then updated."""
    monkeypatch.setattr(_prepared, "ROWS_PER_SERVER_INSERT", 16)
    backend = fresh_backend(postgres_url)
    try:
        seen = _upsert_twice_and_compare(backend, random.Random(11), 40)
    finally:
        backend.close()
    assert len([t for t in seen if "flowkit_insert_" in t]) == 6  # 16 + 16 + 8, twice


def _upsert_twice_and_compare(backend: Backend, rng: random.Random, n: int) -> list[str]:
    """``n`` random atom details upserted column by column, then changed and upserted again; after
    each, the rows read back must be their ``atom_row``. The statements sent."""
    codec = backend.codec
    book, fd = LogBook("b"), FlowDetail("f")
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    for ad in _random_details(rng, n):
        fd.add(ad)
    with recorded_statements(backend) as seen:
        for again in (False, True):
            if again:
                for ad in fd:
                    ad.state, ad.results = rng.choice(list(AtomState)), rng.choice([None, 3, "y"])
            columns = codec.atom_columns(list(fd))
            with backend.get_connection() as conn:
                conn.run(functools.partial(conn.upsert_columns, ATOMS, columns))
            saved = sorted(_saved_atoms(backend, fd), key=lambda row: row["name"])
            for row in saved:
                row.pop("fence", None)
            rows = sorted((codec.atom_row(ad) for ad in fd), key=lambda row: row["name"])
            identity = ("uuid", "parent_uuid")
            assert saved == [{k: v for k, v in row.items() if k not in identity} for row in rows]
    return list(seen)


def test_an_unsaved_atom_detail_is_the_one_its_constructor_makes() -> None:
    """``AtomDetail.unsaved`` (the set-up's, one per new atom) sets the fields the keyword
    constructor sets, to the same values, each its own (a meta dict, a retry history per detail)."""
    for cls in (TaskDetail, RetryDetail):
        for version, position in ((None, 0), ("1.0", 7)):
            made = cls.unsaved("a", "u-1", version, position)
            expected = cls("a", "u-1", version=version, position=position)
            assert type(made) is cls
            fields, wanted = dict(vars(made)), dict(vars(expected))
            assert list(fields) == list(wanted)
            history = fields.pop("history", None)
            wanted.pop("history", None)
            assert fields == wanted
            other = cls.unsaved("b", "u-2", version, position)
            assert other.meta is not made.meta
            if isinstance(made, RetryDetail):
                assert isinstance(history, History) and len(history) == 0
                assert other.history is not made.history  # type: ignore[attr-defined]
