"""One contract, every job board: ZooKeeper, SQLite, in-memory SQLite and PostgreSQL."""

from __future__ import annotations

import pickle
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowkit import states
from flowkit.exceptions import (
    InvalidStateError,
    JobBoardConnectionError,
    JobBoardError,
    JobSetAsideError,
    NotFound,
    NotOwnerError,
    UnclaimableJobError,
    UnknownBackendError,
)
from flowkit.jobboard import Job, JobBoard, JobPriority, JobState
from flowkit.jobboard import backends as boards
from tests.support.boards import BOARD_KINDS, board_url_for

MakeBoard = Callable[..., JobBoard]


@pytest.fixture(params=[*BOARD_KINDS, "memory"])
def board_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return board_url_for(request.param, request, tmp_path)


@pytest.fixture
def make_board(board_url: str) -> Iterator[MakeBoard]:
    """Connected boards on one URL under one name (separate clients, as separate conductors are)."""
    name = f"board-{secrets.token_hex(4)}"
    made: list[JobBoard] = []

    def make(**options: object) -> JobBoard:
        board = boards.fetch(name, board_url, **options)
        board.connect()
        made.append(board)
        return board

    yield make
    for board in made:
        board.close()


@pytest.fixture
def board(make_board: MakeBoard) -> JobBoard:
    return make_board()


def test_a_board_counts_and_lists_its_own_posts_at_once(make_board: MakeBoard) -> None:
    """Read-your-writes: right after ``post`` returns, the same board counts and lists the job (a conductor
    test waiting for ``job_count() == 0`` once passed before the job it had just posted was even seen),
    and another board reading with ``ensure_fresh`` sees it too."""
    board, other = make_board(), make_board()
    posted: list[str] = []
    for i in range(20):
        posted.append(board.post(f"job-{i}").uuid)
        assert board.job_count() == i + 1, f"job {i} posted, counted {board.job_count()}"
        assert board.job_count(only_unclaimed=True) == i + 1
        assert [j.uuid for j in board.iterjobs()] == posted
        assert [j.uuid for j in board.iterjobs(only_unclaimed=True)] == posted
        assert [j.uuid for j in other.iterjobs(ensure_fresh=True)] == posted


def test_a_board_stops_counting_what_it_removed_at_once(board: JobBoard) -> None:
    """Read-your-writes for removals too: right after the board consumes, trashes or sets aside a job
    it holds, its own counts and listings leave the job out (the ZooKeeper board once kept a job it
    had just posted and removed until a watch caught up)."""
    for i in range(10):
        for finish in (board.consume, board.trash, board.set_aside):
            job = board.post(f"job-{i}-{finish.__name__}")
            board.claim(job, "c")
            if finish == board.consume:
                board.consume(job, "c")
            else:
                finish(job, "c", "not wanted")
            assert board.job_count() == 0, f"{finish.__name__} of job {i}: still counted"
            assert list(board.iterjobs()) == []


def test_post_then_list(board: JobBoard) -> None:
    job = board.post("create-cluster-42", details={"store": {"cluster": 42}})
    assert isinstance(job, Job)
    [listed] = board.iterjobs(ensure_fresh=True)
    assert (listed.uuid, listed.name, listed.details) == (
        job.uuid,
        "create-cluster-42",
        {"store": {"cluster": 42}},
    )
    assert listed.state is JobState.UNCLAIMED and job.state is JobState.UNCLAIMED
    assert board.job_count() == 1 and board.job_count(only_unclaimed=True) == 1
    assert board.get_job(job.uuid).name == "create-cluster-42"
    with pytest.raises(NotFound, match="no job"):
        board.get_job("no-such-uuid")


def test_post_flow_sends_the_store_with_the_job(make_board: MakeBoard, tmp_path) -> None:
    """TaskFlow's conductors read the store from ``details["store"]``; the flow detail keeps it too."""
    board = make_board(persistence=f"sqlite:///{tmp_path}/flows.db")
    store = {"cluster": 42, "size": "large"}
    job = board.post_flow("tests.job_flows:tiny", store=store, details={"owner": "ops"})
    [listed] = board.iterjobs(ensure_fresh=True)
    assert listed.details == {"owner": "ops", "store": store} == job.details
    assert board.load_book(listed).find(listed.flow_uuid or "").meta["store"] == store


def test_order_is_priority_then_age(board: JobBoard) -> None:
    low = board.post("low", priority=JobPriority.LOW)
    first = board.post("first")
    second = board.post("second")
    high = board.post("high", priority=JobPriority.VERY_HIGH)
    names = [j.name for j in board.iterjobs(ensure_fresh=True)]
    assert names == ["high", "first", "second", "low"]
    assert [j.uuid for j in board.wait(1)] == [high.uuid, first.uuid, second.uuid, low.uuid]


def test_claim_is_exclusive(make_board: MakeBoard) -> None:
    a, b = make_board(), make_board()
    job = a.post("j")
    a.claim(job, "conductor-a")
    assert a.find_owner(job) == "conductor-a" and b.find_owner(job) == "conductor-a"
    assert job.state is JobState.CLAIMED
    with pytest.raises(UnclaimableJobError, match="conductor-a"):
        b.claim(job, "conductor-b")
    with pytest.raises(UnclaimableJobError):
        a.claim(job, "conductor-a2")
    assert list(a.iterjobs(only_unclaimed=True, ensure_fresh=True)) == []
    assert a.job_count() == 1


def test_only_the_owner_consumes_or_abandons(make_board: MakeBoard) -> None:
    a, b = make_board(), make_board()
    job = a.post("j")
    a.claim(job, "conductor-a")
    for act in (b.consume, b.abandon, b.trash):
        with pytest.raises(NotOwnerError, match="conductor-a"):
            act(job, "conductor-a")  # same name, another board: not the owner
    with pytest.raises(NotOwnerError):
        a.consume(job, "conductor-b")
    a.consume(job, "conductor-a")
    assert job.state is JobState.COMPLETE
    assert list(b.iterjobs(ensure_fresh=True)) == []
    with pytest.raises(NotOwnerError):
        a.consume(job, "conductor-a")
    with pytest.raises(UnclaimableJobError, match="no longer"):
        b.claim(job, "conductor-b")


def test_abandon_gives_the_job_back(make_board: MakeBoard) -> None:
    a, b = make_board(), make_board()
    job = a.post("j")
    a.claim(job, "conductor-a")
    a.abandon(job, "conductor-a", "disk full")
    assert job.state is JobState.UNCLAIMED and a.find_owner(job) is None
    [again] = b.wait(5)
    assert again.uuid == job.uuid and again.last_reason == "disk full" and again.attempts == 1
    b.claim(again, "conductor-b")
    assert a.find_owner(job) == "conductor-b"


def test_every_claim_gets_a_higher_fencing_token(make_board: MakeBoard) -> None:
    """The token comes from the claim itself: a later claim, by anyone, out-ranks an earlier one; so
    does a claim of a job posted later for the same flow detail."""
    a, b = make_board(), make_board()
    job = a.post("j", flow_detail="fd-1")
    assert job.fence is None  # not claimed here
    a.claim(job, "conductor-a")
    first = job.fence
    assert isinstance(first, int) and first > 0
    a.abandon(job, "conductor-a")
    [again] = b.wait(5)
    b.claim(again, "conductor-b")
    assert isinstance(again.fence, int) and again.fence > first
    b.consume(again, "conductor-b")
    later = b.post("j again", flow_detail="fd-1")
    b.claim(later, "conductor-b")
    assert isinstance(later.fence, int) and later.fence > again.fence


def test_trash_and_set_aside(board: JobBoard) -> None:
    t, s = board.post("t"), board.post("s")
    board.claim(t, "c")
    board.trash(t, "c", "not wanted")
    board.claim(s, "c")
    board.set_aside(s, "c", "factory not allowed")
    assert t.state is JobState.TRASHED and s.state is JobState.SET_ASIDE
    assert board.job_count() == 0
    [aside] = board.set_aside_jobs()
    assert aside.uuid == s.uuid and aside.last_reason == "factory not allowed"
    assert board.get_job(s.uuid).last_reason == "factory not allowed"


def test_state_changes_obey_the_transition_table(board: JobBoard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Boards take their transitions from ``flowkit.states``: a move the table forbids is refused with
    InvalidStateError naming the job, and the job stays as it was."""
    job = board.post("j")
    board.claim(job, "c")
    claimed = states.JOB_TRANSITIONS[JobState.CLAIMED]
    monkeypatch.setitem(states.JOB_TRANSITIONS, JobState.CLAIMED, claimed - {JobState.TRASHED})
    with pytest.raises(InvalidStateError, match=f"job '{job.uuid}' cannot go from CLAIMED to TRASHED"):
        board.trash(job, "c", "not wanted")
    assert job.state is JobState.CLAIMED and board.find_owner(job) == "c"
    monkeypatch.undo()
    board.trash(job, "c", "not wanted")
    assert job.state is JobState.TRASHED


def test_poison_job_is_set_aside_after_max_attempts(make_board: MakeBoard) -> None:
    board = make_board(max_attempts=2)
    job = board.post("poison")
    board.claim(job, "c")
    board.abandon(job, "c", "conductor shutting down", count=False)  # not the job's fault: not counted
    for i in range(2):
        board.claim(job, "c")
        board.abandon(job, "c", f"crash {i}")
    with pytest.raises(JobSetAsideError, match="claimed 2 times") as caught:
        board.claim(job, "c")
    assert "crash 1" in str(caught.value)
    assert job.state is JobState.SET_ASIDE
    assert [j.uuid for j in board.set_aside_jobs()] == [job.uuid]
    assert board.claim_next("c") is None
    clone = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(clone, JobSetAsideError) and str(clone) == str(caught.value)


def test_claim_next_skips_poison_and_claimed(make_board: MakeBoard) -> None:
    board = make_board(max_attempts=1)
    poison, good = board.post("poison"), board.post("good")
    board.claim(poison, "c")
    board.abandon(poison, "c", "boom")
    other = make_board(max_attempts=1)
    claimed = []
    while (got := other.claim_next("c2")) is not None:
        claimed.append(got.uuid)
    assert claimed == [good.uuid]  # the poison job was set aside when met, whatever the order
    assert poison.state is JobState.SET_ASIDE


def test_racing_claimants_each_job_once(make_board: MakeBoard) -> None:
    poster = make_board()
    uuids = {poster.post(f"j{i}").uuid for i in range(30)}
    claimants = [make_board() for _ in range(3)]
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(board: JobBoard, who: str) -> None:
        while (job := board.claim_next(who)) is not None:
            with lock:
                claimed.setdefault(job.uuid, []).append(who)
            board.consume(job, who)

    threads = [threading.Thread(target=work, args=(b, f"c{i}")) for i, b in enumerate(claimants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(claimed) == uuids
    assert all(len(v) == 1 for v in claimed.values())
    assert list(poster.iterjobs(ensure_fresh=True)) == []


def test_wait_is_woken_by_a_post(make_board: MakeBoard) -> None:
    waiter, poster = make_board(), make_board()
    assert list(waiter.wait(0.2)) == []
    threading.Timer(0.3, lambda: poster.post("late")).start()
    started = time.monotonic()
    jobs = list(waiter.wait(10))
    took = time.monotonic() - started
    assert [j.name for j in jobs] == ["late"]
    assert 0.2 < took < 2.0


def test_closing_releases_claims(make_board: MakeBoard) -> None:
    a, b = make_board(), make_board()
    job = a.post("j")
    a.claim(job, "conductor-a")
    a.close()
    [again] = b.wait(10)
    b.claim(again, "conductor-b")
    assert b.find_owner(job) == "conductor-b"


def test_unconnected_board_says_so(board_url: str) -> None:
    board = boards.fetch("x", board_url)
    with pytest.raises(JobBoardConnectionError, match="not connected"):
        board.post("j")


def test_bad_urls() -> None:
    with pytest.raises(UnknownBackendError, match="redis"):
        boards.fetch("x", "redis://localhost")
    with pytest.raises(JobBoardError, match="colour"):
        boards.fetch("x", "zookeeper://127.0.0.1:2181/x?colour=red")
    with pytest.raises(JobBoardError, match="timeout='soon'"):
        boards.fetch("x", "zookeeper://127.0.0.1:2181/x?timeout=soon")
    with pytest.raises(JobBoardError, match="max_attempts"):
        boards.fetch("x", "memory://x", max_attempts=0)


@pytest.mark.parametrize(
    "url",
    [
        "zookeeper://user:secret@127.0.0.1:1/p?bogus=1",
        "zookeeper://user:secret@127.0.0.1:1,127.0.0.2:1/p?timeout=soon",
        "zookeeper://user:secret@127.0.0.1:1/p?max_attempts=many",
        "postgresql://user:secret@127.0.0.1:1/db?bogus=1",
        "postgresql://user:secret@127.0.0.1:1/db?lease=soon",
        "redis://user:secret@127.0.0.1:1/0",
    ],
)
def test_errors_never_show_a_url_password(url: str) -> None:
    with pytest.raises((JobBoardError, UnknownBackendError)) as info:
        boards.fetch("x", url)
    message = str(info.value)
    assert "secret" not in message and "secret" not in repr(info.value.args)
    assert "user:***@127.0.0.1" in message


def test_display_url_hides_only_the_password() -> None:
    assert (
        boards.display_url("postgresql://u:p%40ss@h:5432/db?lease=3")
        == "postgresql://u:***@h:5432/db?lease=3"
    )
    assert boards.display_url("zookeeper://u:pw@h1:1,h2:2/p") == "zookeeper://u:***@h1:1,h2:2/p"
    assert boards.display_url("sqlite:///tmp/board.db") == "sqlite:///tmp/board.db"
    assert boards.display_url("postgresql://u@h/db") == "postgresql://u@h/db"
