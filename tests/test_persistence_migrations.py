"""Schema migrations: upgraded from empty, re-run as a no-op, on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flowkit.exceptions import SchemaError
from flowkit.jobboard.backends import _sql_schema as board_schema
from flowkit.jobboard.backends.sql import SQLJobBoard
from flowkit.persistence import backends, migrations
from flowkit.persistence.backends._tables import metadata
from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend
from flowkit.sql import engines, urls

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no flowkit tables: a new SQLite file, or a new schema in the test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"mig_{secrets.token_hex(4)}"
    engine = engines.create(urls.parse(base, (), SchemaError, "test")[0])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def _columns(backend: SQLAlchemyBackend) -> dict[str, set[str]]:
    inspector = sa.inspect(backend.engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def test_upgrade_from_empty_then_again(empty_url: str) -> None:
    backend = backends.fetch(empty_url)
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        with pytest.raises(SchemaError, match="no flowkit schema"):
            conn.validate()
        conn.upgrade()
        conn.upgrade()  # idempotent
        conn.validate()
    found = _columns(backend)
    for table in metadata.sorted_tables:  # the run-time tables are exactly what the migrations made
        assert found[table.name] == {c.name for c in table.columns}
    assert migrations.VERSION_TABLE in found
    with backend.engine.connect() as raw:
        assert migrations.current(raw) == migrations.head()
    backend.close()


def test_concurrent_upgrades_do_not_collide(empty_url: str) -> None:
    """Several processes upgrading one empty database at once (conductors starting together)."""
    cmd = [sys.executable, "-m", "flowkit.cli.main", "db", "upgrade", empty_url]
    children = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()[-2000:]
    # and threads in one process (alembic's module-level state is guarded)
    errors: list[BaseException] = []

    def upgrade() -> None:
        backend = backends.fetch(empty_url)
        try:
            with backend.get_connection() as conn:
                conn.upgrade()
        except BaseException as exc:
            errors.append(exc)
        finally:
            backend.close()

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_developer_entry_point_runs_the_same_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    alembic = Path(sys.executable).with_name("alembic")
    for _ in range(2):
        subprocess.run([str(alembic), "-x", f"url={url}", "upgrade", "head"], cwd=REPO, check=True)
    out = subprocess.run(
        [str(alembic), "-x", f"url={url}", "current"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    assert f"{migrations.head()} (head)" in out
    backend = backends.fetch(url)
    with backend.get_connection() as conn:
        conn.validate()
    backend.close()


def test_downgrade_to_empty_and_back(tmp_path: Path) -> None:
    from alembic import command

    backend = backends.fetch(f"sqlite:///{tmp_path}/down.db")
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        conn.upgrade()
    with backend.engine.connect() as raw:
        command.downgrade(migrations.config(raw), "base")
        raw.commit()
    assert set(_columns(backend)) == {migrations.VERSION_TABLE}
    backend.schema_checked = False
    with backend.get_connection() as conn:
        conn.upgrade()
        conn.validate()
    backend.close()


def test_the_revisions_form_one_line() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.config())
    assert [r.revision for r in script.walk_revisions()] == [
        "0009",
        "0008",
        "0007",
        "0006",
        "0005",
        "0004",
        "0003",
        "0002",
        "0001",
    ]
    assert script.get_heads() == [migrations.head()] == ["0009"]


def _board_table(backend: SQLAlchemyBackend) -> tuple[set[str], dict[str, list[str]], bool]:
    """flowkit_jobs' columns, its indexes, and whether ``uuid`` is unique, as the database has them."""
    inspector = sa.inspect(backend.engine)
    name = board_schema.jobs.name
    indexes = {i["name"]: list(i["column_names"]) for i in inspector.get_indexes(name) if i["name"]}
    unique = [list(u["column_names"]) for u in inspector.get_unique_constraints(name)]
    unique += [list(i["column_names"]) for i in inspector.get_indexes(name) if i.get("unique")]
    return {c["name"] for c in inspector.get_columns(name)}, indexes, ["uuid"] in unique


def _descending(backend: SQLAlchemyBackend, index: str) -> list[str]:
    """The columns of ``index`` in descending order, as the database has them (SQLite's reflection does
    not say: its ``index_xinfo`` pragma does)."""
    if backend.engine.dialect.name == "sqlite":
        with backend.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA index_xinfo({index})").all()
        return [row[2] for row in rows if row[5] == 1 and row[2] is not None and row[3] == 1]
    found = [i for i in sa.inspect(backend.engine).get_indexes(board_schema.jobs.name) if i["name"] == index]
    return [c for c, how in found[0].get("column_sorting", {}).items() if "desc" in how]


def test_the_job_board_table_comes_with_the_upgrade_and_goes_with_a_downgrade(empty_url: str) -> None:
    from alembic import command

    backend = backends.fetch(empty_url)
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        conn.upgrade()
    columns, indexes, uuid_unique = _board_table(backend)
    assert columns == {c.name for c in board_schema.jobs.columns}  # what the board uses at run time
    assert indexes["flowkit_jobs_pick"] == ["board", "state", "priority", "id"]
    assert _descending(backend, "flowkit_jobs_pick") == ["priority"]  # the claim order (revision 0008)
    assert indexes["flowkit_jobs_wake"] == ["board", "state", "wake_at", "id"]  # parked jobs (0009)
    assert uuid_unique

    with backend.engine.connect() as raw:
        command.downgrade(migrations.config(raw), "0001")
        raw.commit()
        assert migrations.current(raw) == "0001"
    assert set(_columns(backend)) == {t.name for t in metadata.sorted_tables} | {migrations.VERSION_TABLE}

    board = SQLJobBoard("b", empty_url)
    board.connect()  # a board migrates its database on connect: the table is back
    try:
        board.post("j")
        assert board.job_count() == 1
    finally:
        board.close()
    with backend.engine.connect() as raw:
        assert migrations.current(raw) == migrations.head()
    backend.close()


def test_a_table_an_older_board_made_is_adopted(tmp_path: Path) -> None:
    """Boards before revision 0002 made their table with create_all and no revision; jobs survive."""
    url = f"sqlite:///{tmp_path}/old-board.db"
    engine = sa.create_engine(url)
    board_schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            board_schema.jobs.insert().values(
                board="b",
                uuid="u",
                name="old",
                state="UNCLAIMED",
                priority=0,
                attempts=0,
                created_on=0.0,
                updated_on=0.0,
                record="{}",
            )
        )
    engine.dispose()
    board = SQLJobBoard("b", url)
    board.connect()
    board.close()
    backend = backends.fetch(url)
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        conn.validate()  # at the newest revision, persistence's tables made alongside
    with backend.engine.connect() as raw:
        assert raw.execute(sa.select(board_schema.jobs.c.name)).scalars().all() == ["old"]
    backend.close()


def test_the_events_table_comes_with_revision_0005(empty_url: str) -> None:
    from alembic import command
    from flowkit.persistence.backends._tables import events

    backend = backends.fetch(empty_url)
    assert isinstance(backend, SQLAlchemyBackend)
    with backend.get_connection() as conn:
        conn.upgrade()
    assert set(_columns(backend)["flowkit_events"]) == {c.name for c in events.columns}
    with backend.engine.connect() as raw:
        command.downgrade(migrations.config(raw), "0004")
        raw.commit()
    assert "flowkit_events" not in _columns(backend)
    backend.close()
