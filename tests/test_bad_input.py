"""Bad input gets a FlowkitError that names the problem, before anything is saved; bad saved data is
skipped, not fatal to its neighbours. On the real services where each defect was:

- a 10 MB job on the ZooKeeper board said "lost ZooKeeper" and left an orphan logbook;
- a job name over 255 characters on the SQL board (PostgreSQL) raised sqlalchemy's DataError and left
  an orphan logbook;
- NUL characters and lone surrogates in names raised psycopg2's ValueError / UnicodeEncodeError;
- one corrupt logbook made ``get_logbooks()`` and ``flowkit show`` fail for all the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg2
import pytest
from click.testing import CliRunner

from flowkit import LinearFlow, engines
from flowkit.cli.main import cli
from flowkit.engines.persistence import backend_for
from flowkit.exceptions import InvalidNameError, JobTooLargeError
from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.persistence.models import AtomDetail, FlowDetail, LogBook
from tests.allowlist_flows import Touch
from tests.support.boards import zookeeper_tree

pytestmark = [pytest.mark.postgres]

FACTORY = "tests.allowlist_flows:make"


def _logbook_uuids(postgres_url: str) -> set[str]:
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT uuid FROM flowkit_logbooks")
        found = {row[0] for row in cur.fetchall()}
    conn.close()
    return found


@pytest.fixture
def zk_board(zookeeper_hosts: str, postgres_url: str) -> Iterator[JobBoard]:
    with zookeeper_tree(zookeeper_hosts) as path:
        board = boards.fetch(
            "bad-input", f"zookeeper://{zookeeper_hosts}{path}?timeout=4", persistence=postgres_url
        )
        board.connect()
        yield board
        board.close()


@pytest.fixture
def pg_board(postgres_url: str) -> Iterator[JobBoard]:
    board = boards.fetch(f"bad-input-{id(postgres_url)}", postgres_url, persistence=postgres_url)
    board.connect()
    yield board
    for job in board.iterjobs(ensure_fresh=True):  # the board table is shared by the session
        board.claim(job, "cleanup")
        board.consume(job, "cleanup")
    board.close()


@pytest.fixture(params=["zookeeper", "postgresql"])
def board(request: pytest.FixtureRequest) -> JobBoard:
    if request.param == "zookeeper":
        request.applymarker(pytest.mark.zookeeper)
        return request.getfixturevalue("zk_board")
    return request.getfixturevalue("pg_board")


@pytest.mark.zookeeper
def test_a_job_too_large_for_zookeeper_is_refused_before_anything_is_saved(
    zk_board: JobBoard, postgres_url: str
) -> None:
    before = _logbook_uuids(postgres_url) if _has_schema(postgres_url) else set()
    blob = "x" * (10 * 1024 * 1024)
    with pytest.raises(JobTooLargeError) as caught:
        zk_board.post_flow(FACTORY, store={"blob": blob}, name="huge")
    text = str(caught.value)
    assert "1,000,000 bytes" in text and f"{len(blob):,}"[:5] in text and "'huge'" in text, text
    with pytest.raises(JobTooLargeError):
        zk_board.post("huge", details={"blob": blob})
    assert _logbook_uuids(postgres_url) == before
    assert zk_board.job_count() == 0 and zk_board.connected
    job = zk_board.post_flow(FACTORY, store={"blob": "x" * 500_000}, name="fits")  # the board works on
    assert [j.uuid for j in zk_board.iterjobs(ensure_fresh=True)] == [job.uuid]


def _has_schema(postgres_url: str) -> bool:
    with backend_for(postgres_url).get_connection() as conn:
        conn.upgrade()
    return True


BAD_NAMES = {
    "long": ("n" * 256, "over the limit of 255"),
    "nul": ("a\x00b", "NUL character"),
    "surrogate": ("a\udc80b", "lone surrogate"),
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_a_bad_job_name_is_refused_on_every_board_and_nothing_is_saved(
    case: str, board: JobBoard, postgres_url: str
) -> None:
    name, reason = BAD_NAMES[case]
    _has_schema(postgres_url)
    before = _logbook_uuids(postgres_url)
    with pytest.raises(InvalidNameError, match=reason):
        board.post_flow(FACTORY, store={"path": "x"}, name=name)
    with pytest.raises(InvalidNameError, match=reason):
        board.post(name)
    assert _logbook_uuids(postgres_url) == before
    assert board.job_count() == 0
    with pytest.raises(InvalidNameError, match="must not be empty"):
        board.post("")
    longest = board.post_flow(FACTORY, name="n" * 255)  # the limit itself is fine
    assert [j.name for j in board.iterjobs(ensure_fresh=True)] == ["n" * 255] and longest.name == "n" * 255


@pytest.mark.parametrize("bad", ["a\x00b", "a\udc80b"])
def test_names_that_no_database_takes_are_refused_where_they_enter_persistence(
    bad: str, postgres_url: str
) -> None:
    for make in (LogBook, FlowDetail, AtomDetail):
        with pytest.raises(InvalidNameError, match=r"NUL|surrogate"):
            make(bad)
    backend = backend_for(postgres_url)
    with backend.get_connection() as conn:
        conn.upgrade()
    before = _logbook_uuids(postgres_url)
    with pytest.raises(InvalidNameError, match=r"NUL|surrogate"):
        engines.load(LinearFlow(bad).add(Touch("t")), store={"path": "x"}, backend=backend).run()
    with pytest.raises(InvalidNameError, match=r"atom name .* (NUL|surrogate)"):
        Touch(bad)
    assert _logbook_uuids(postgres_url) == before


def test_nul_and_surrogates_in_store_keys_and_values_round_trip(
    pg_board: JobBoard, postgres_url: str
) -> None:
    store = {"k\x00\udc80": "v\x00\udc80", "path": "x"}
    job = pg_board.post_flow(FACTORY, store=store, name="odd-store")
    book = pg_board.load_book(job)
    assert book.find(job.flow_uuid).meta["store"] == store
    assert pg_board.get_job(job.uuid).details["store"] == store


@pytest.fixture
def corrupt_books(postgres_url: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Three good logbooks and three corrupt ones (meta not JSON, a flow state and an atom kind that
    do not exist); the corrupt ones are deleted afterwards, for the other tests of the session."""
    backend = backend_for(postgres_url)
    books = [LogBook(f"book-{i}") for i in range(6)]
    for book in books:
        fd = book.add(FlowDetail(f"{book.name}-flow"))
        fd.add(AtomDetail(f"{book.name}-atom"))
    with backend.get_connection() as conn:
        conn.upgrade()
        for book in books:
            conn.save_logbook(book)
    bad = {books[1].uuid: "meta", books[3].uuid: "'BOGUS'", books[5].uuid: "'gadget'"}
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE flowkit_logbooks SET meta = '{not json' WHERE uuid = %s", (books[1].uuid,))
        cur.execute("UPDATE flowkit_flowdetails SET state = 'BOGUS' WHERE parent_uuid = %s", (books[3].uuid,))
        fd_uuid = next(iter(books[5])).uuid
        cur.execute("UPDATE flowkit_atomdetails SET kind = 'gadget' WHERE parent_uuid = %s", (fd_uuid,))
    conn.close()
    try:
        yield [books[i].uuid for i in (0, 2, 4)], bad
    finally:
        with backend.get_connection() as conn:
            for uuid in bad:
                conn.destroy_logbook(uuid)


def test_one_corrupt_logbook_does_not_hide_the_others(
    corrupt_books: tuple[list[str], dict[str, str]], postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = corrupt_books
    with caplog.at_level(logging.WARNING), backend_for(postgres_url).get_connection() as conn:
        listed = [b.uuid for b in conn.get_logbooks()]
    assert set(good) <= set(listed) and not set(bad) & set(listed)
    for uuid, why in bad.items():
        [line] = [r.getMessage() for r in caplog.records if uuid in r.getMessage()]
        assert "skipped" in line and why in line, line
    result = CliRunner().invoke(cli, ["show", postgres_url])
    assert result.exit_code == 0, result.output
    for uuid in good:
        assert uuid in result.output
    for uuid, why in bad.items():
        [line] = [li for li in result.output.splitlines() if uuid in li]
        assert "skipped" in line and why in line, line
    result = CliRunner().invoke(cli, ["show", postgres_url, next(iter(bad))])  # asked for by uuid: an error
    assert result.exit_code == 1 and "corrupt" in result.output, result.output
