"""The SQL foundation (flowkit/sql): one URL parser, one engine factory, one engine per database.

Persistence and the SQL job board must take the same URLs, refuse bad ones the same way (a
FlowkitError that names the URL without its password), run SQLite with the same settings, and share
one engine (one pool) when they use the same database.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flowkit.exceptions import FlowkitError, JobBoardError, StorageError, UnknownBackendError
from flowkit.jobboard import backends as boards
from flowkit.jobboard.backends.sql import SQLBoardOptions, SQLJobBoard
from flowkit.persistence import backends
from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend, SQLOptions
from flowkit.persistence.models import LogBook
from flowkit.sql import engines, urls

# -- the URL parser ------------------------------------------------------------------------------------

GOOD = [
    ("sqlite:///rel/x.db", "sqlite", "rel/x.db"),
    ("sqlite:////abs/x.db", "sqlite", "/abs/x.db"),
    ("sqlite+pysqlite:///x.db", "sqlite+pysqlite", "x.db"),
    ("postgresql://u@h/db", "postgresql+psycopg2", "db"),
    ("postgres://u@h/db", "postgresql+psycopg2", "db"),
    ("postgresql+psycopg2://u@h:5433/db", "postgresql+psycopg2", "db"),
    ("postgres+psycopg2://u@h/db", "postgres+psycopg2", "db"),
]


@pytest.mark.parametrize(("url", "driver", "database"), GOOD)
def test_both_backends_take_every_sql_scheme(url: str, driver: str, database: str) -> None:
    for options in (SQLOptions.from_url(url), SQLBoardOptions.from_url(url)):
        assert options.database.url.database == database
        assert options.database.dialect in urls.DIALECTS
        if not driver.startswith("postgres+"):
            assert options.database.url.drivername == driver


def test_postgres_alias_works_for_a_board_and_for_persistence(postgres_url: str) -> None:
    alias = "postgres://" + postgres_url.split("://", 1)[1]
    backend = backends.fetch(alias)
    board = boards.fetch(f"b-{secrets.token_hex(4)}", alias)
    try:
        with backend.get_connection() as conn:
            conn.upgrade()
        board.connect()
        board.post("j")
        assert board.job_count() == 1
    finally:
        board.close()
        backend.close()


def test_typed_options() -> None:
    got = SQLOptions.from_url("sqlite:///a.db?durability=atom&retry_timeout=2.5&timeout=7")
    assert (got.durability, got.retry_timeout) == ("atom", 2.5)
    assert dict(got.database.url.query) == {"timeout": "7"}  # the driver's own option goes to it
    assert SQLOptions.from_url("sqlite:///a.db") == SQLOptions(
        urls.parse("sqlite:///a.db", (), StorageError, "x")[0]
    )
    board = SQLBoardOptions.from_url("postgresql://u:pw@h/db?lease=3&poll=0.2&max_attempts=4&sslmode=require")
    assert (board.lease, board.poll, board.max_attempts) == (3.0, 0.2, 4)
    assert dict(board.database.url.query) == {"sslmode": "require"}
    assert board.database.display == "postgresql+psycopg2://u:***@h/db?sslmode=require"
    memory = SQLBoardOptions.from_url("memory://jobs?lease=2")
    assert (memory.database.name, memory.lease, memory.database.in_memory) == ("jobs", 2.0, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.lease = 1.0  # type: ignore[misc]
    assert SQLJobBoard("b", "sqlite:///x.db?lease=3", lease=5).lease == 5  # arguments win over the URL
    assert SQLJobBoard("b", "sqlite:///x.db?lease=3").lease == 3


BAD = [
    "sqlite://x.db",  # a host, where a path was meant
    "sqlite:x.db",
    "postgresql://u:secret@h:99999/db",
    "postgresql://u:secret@h:port/db",
    "postgresql://u:secret@h/db?bogus=1",
    "postgresql://u:secret@h/db?sslmode=require&sslmode=disable",
    "mysql://u:secret@h/db",
]
BAD_FOR_PERSISTENCE = [
    "postgresql://u:secret@h/db?durability=sometimes",
    "postgresql://u:secret@h/db?retry_timeout=x",
]
BAD_FOR_BOARDS = [
    "postgresql://u:secret@h/db?lease=soon",
    "postgresql://u:secret@h/db?lease=0",
    "memory://x?bogus=1",
]


@pytest.mark.parametrize("url", BAD + BAD_FOR_PERSISTENCE)
def test_a_bad_persistence_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(FlowkitError) as caught:
        backends.fetch(url).close()
    _names_the_url_without_password(caught.value, url)
    assert isinstance(caught.value, StorageError | UnknownBackendError)


@pytest.mark.parametrize("url", BAD + BAD_FOR_BOARDS)
def test_a_bad_board_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(FlowkitError) as caught:
        boards.fetch("b", url)
    _names_the_url_without_password(caught.value, url)
    assert isinstance(caught.value, JobBoardError | UnknownBackendError)


def _names_the_url_without_password(exc: BaseException, url: str) -> None:
    message = str(exc)
    assert "secret" not in message and "secret" not in repr(exc.args)
    if "secret" in url:
        assert "u:***@h" in message
    else:
        assert url.split("?")[0].split("://")[-1].lstrip(":") in message


# -- one engine, one set of SQLite settings -------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL no other test uses in this process (so its engine is this test's alone)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
    else:  # the session's database, under a URL of its own
        yield f"{request.getfixturevalue('postgres_url')}?application_name=t{secrets.token_hex(4)}"


def test_a_board_and_persistence_on_one_database_share_one_engine(db_url: str) -> None:
    backend = backends.fetch(f"{db_url}{'&' if '?' in db_url else '?'}durability=atom")
    assert isinstance(backend, SQLAlchemyBackend)
    board = boards.fetch(f"b-{secrets.token_hex(4)}", f"{db_url}{'&' if '?' in db_url else '?'}lease=5")
    assert isinstance(board, SQLJobBoard)
    board.connect()  # upgrades the schema that persistence uses too
    try:
        assert board.engine is backend.engine
        board.close()  # the board's release leaves persistence's engine working
        with backend.get_connection() as conn:
            conn.validate()
            conn.save_logbook(LogBook("book"))
        board.connect()
        assert board.engine is backend.engine
        backend.close()  # and persistence's leaves the board's
        board.post("j")
        assert board.job_count() >= 1
    finally:
        board.close()
        backend.close()
    again = backends.fetch(db_url)
    try:  # the last user released it: the next one gets a fresh engine
        assert isinstance(again, SQLAlchemyBackend) and again.engine is not backend.engine
    finally:
        again.close()


PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")


def _pragmas(engine: sa.Engine | None) -> dict[str, object]:
    assert engine is not None
    with engine.connect() as conn:
        return {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in PRAGMAS}


def test_sqlite_settings_are_the_same_for_a_board_and_for_persistence(tmp_path: Path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path}/flows.db")
    board = SQLJobBoard("b", f"sqlite:///{tmp_path}/board.db")  # another file: its own engine
    board.connect()
    memory_backend = backends.fetch("sqlite://")
    memory_board = SQLJobBoard("b", f"memory://{secrets.token_hex(4)}")
    memory_board.connect()
    try:
        assert isinstance(backend, SQLAlchemyBackend) and isinstance(memory_backend, SQLAlchemyBackend)
        assert board.engine is not backend.engine
        on_file = _pragmas(backend.engine)
        assert on_file == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}
        assert _pragmas(board.engine) == on_file
        assert _pragmas(memory_board.engine) == _pragmas(memory_backend.engine)
    finally:
        for closing in (board, memory_board, backend, memory_backend):
            closing.close()


def test_a_board_upgrades_its_schema_without_a_persistence_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the board built a persistence backend to upgrade its schema")

    monkeypatch.setattr(SQLAlchemyBackend, "__init__", refuse)
    board = SQLJobBoard("b", f"sqlite:///{tmp_path}/new.db")
    board.connect()
    try:
        board.post("j")
        assert board.job_count() == 1
    finally:
        board.close()


def test_migrations_and_the_persistence_backend_do_not_import_each_other() -> None:
    import flowkit.persistence.migrations as migrations

    source = Path(migrations.__file__).read_text()
    assert "backends.sqlalchemy" not in source and "backends import" not in source


def test_an_unnamed_in_memory_database_is_never_shared() -> None:
    one, two = engines.acquire(urls.memory("x")), engines.acquire(urls.memory("x"))
    fresh = [engines.acquire(urls.parse("sqlite://", (), StorageError, "t")[0]) for _ in range(2)]
    try:
        assert one.engine is two.engine  # a named one is
        assert fresh[0].engine is not fresh[1].engine
    finally:
        for lease in (one, two, *fresh):
            lease.release()


def test_zookeeper_urls_give_typed_options_too() -> None:
    found = boards.ZooKeeperOptions.from_url("zookeeper://u:p%40ss@h1:1,h2:2/jobs?timeout=4&world_read=1")
    assert found == boards.ZooKeeperOptions("h1:1,h2:2", "/jobs", ("u", "p@ss"), 4.0, None, True)
    assert found.arguments() == {
        "hosts": "h1:1,h2:2",
        "path": "/jobs",
        "auth": ("u", "p@ss"),
        "timeout": 4.0,
        "world_read": True,
    }
    assert boards.ZooKeeperOptions.from_url("zookeeper://h/").arguments() == {"hosts": "h", "path": "/"}


def test_a_backend_used_again_after_close_holds_the_engine_again(tmp_path: Path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path}/again.db")
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        conn.upgrade()
    backend.close()
    board = SQLJobBoard("b", f"sqlite:///{tmp_path}/again.db")
    board.connect()
    try:
        with backend.get_connection() as conn:  # as before the shared engines: close() is not final
            conn.save_logbook(LogBook("book"))
        assert backend.engine is board.engine  # and it shares the database's engine again
    finally:
        board.close()
        backend.close()


@pytest.mark.postgres
def test_a_postgresql_connection_is_pinged_only_after_sitting_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection given back moments ago is used as it is (no ping round trip per checkout); one idle
    for PING_AFTER seconds is pinged, and replaced when its server session died meanwhile."""
    database = urls.parse(postgres_url, (), StorageError, "test")[0]
    engine = engines.create(database)
    pings: list[object] = []
    real_ping = type(engine.dialect).do_ping
    monkeypatch.setattr(
        type(engine.dialect), "do_ping", lambda self, c: pings.append(c) or real_ping(self, c)
    )
    try:
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
        assert pings == []  # just used: not pinged

        killer = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
        with killer.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        killer.dispose()
        monkeypatch.setattr(engines, "PING_AFTER", 0.0)
        with engine.connect() as conn:  # idle long enough: pinged, found dead, replaced
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        assert pings
    finally:
        engine.dispose()
