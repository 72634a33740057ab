"""Parked jobs: a flow left with only durable waits goes back to the board in state WAITING, the
conductor takes other work, and any conductor claims the job again at its time or on its event.

On every board (``board`` in conftest: SQLite, PostgreSQL, ZooKeeper) with SQLite persistence, and
once with PostgreSQL persistence; the conductors run in this process.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conductor import Conductor
from flowkit.exceptions import JobBoardError
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.persistence import events
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.shared import backend_for
from tests.support.boards import board_is_empty
from tests.support.conductors import Conductors, running
from tests.support.wait import wait_until
from tests.wait_flows import read_log


def _sleepy(board: JobBoard, workdir: Path, seconds: float, name: str = "sleepy") -> Job:
    return board.post_flow("tests.wait_flows:sleepy", factory_args=[str(workdir), seconds], name=name)


def _approval(board: JobBoard, workdir: Path, cluster: int, timeout: float | None = None) -> Job:
    return board.post_flow(
        "tests.wait_flows:approval",
        store={"cluster_id": cluster},
        factory_args=[str(workdir)],
        factory_kwargs={"timeout": timeout},
        name=f"approval-{cluster}",
    )


def _flow_state(board: JobBoard, job: Job) -> str:
    book = board.load_book(job)
    assert book is not None
    fd = book.find(job.flow_uuid or "")
    assert fd is not None
    return fd.state.value


def _waiting(board: JobBoard, job: Job) -> bool:
    return board.state_of(job) is JobState.WAITING


def test_a_sleeping_flow_is_parked_and_its_conductor_runs_other_jobs_meanwhile(
    board: JobBoard, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sleepy = _sleepy(board, tmp_path / "a", 2.5)
    with running(Conductor("c1", board, board.persistence or "", max_jobs=1)) as conductor:
        wait_until(lambda: _waiting(board, sleepy), 20, "the sleeping job parked")
        wait_until(lambda: conductor.running_jobs == 0, 5, "the conductor free")
        other = _sleepy(board, tmp_path / "b", 0.0, name="quick")
        wait_until(lambda: board.state_of(other) is JobState.COMPLETE, 20, "the other job done meanwhile")
        assert board.state_of(sleepy) is JobState.WAITING  # max_jobs=1: it did not hold the only slot
        wait_until(lambda: board_is_empty(board), 30, "the parked job resumed and consumed")
        # the board empties at the consume, a moment before the conductor counts it
        wait_until(lambda: conductor.stats.consumed == 2, 5, "both consumes counted")
        assert conductor.stats.parked >= 1
    assert _flow_state(board, sleepy) == "SUCCESS"
    assert [line.split()[0] for line in read_log(tmp_path / "a")] == ["before", "after"]


def test_an_event_sent_through_the_board_wakes_the_parked_job_with_its_payload(
    board: JobBoard, tmp_path: Path
) -> None:
    job = _approval(board, tmp_path, 9)
    with running(Conductor("c1", board, board.persistence or "")) as conductor:
        wait_until(lambda: _waiting(board, job), 20, "the job parked on its event")
        board.send_event("approve-9", {"by": "ops"})
        wait_until(lambda: board_is_empty(board), 20, "the job woken and consumed")
        assert conductor.stats.parked == 1
    assert read_log(tmp_path) == ["before []", "after [('approval', {'by': 'ops'})]"]


def test_an_event_sent_before_the_job_runs_is_kept_for_it(board: JobBoard, tmp_path: Path) -> None:
    board.send_event("approve-4", "early")
    job = _approval(board, tmp_path, 4)
    with running(Conductor("c1", board, board.persistence or "")) as conductor:
        wait_until(lambda: board_is_empty(board), 20, "the job consumed")
        assert conductor.stats.parked == 0
    assert board.state_of(job) is JobState.COMPLETE
    assert read_log(tmp_path)[-1] == "after [('approval', 'early')]"


def test_one_event_wakes_every_job_waiting_for_it(board: JobBoard, tmp_path: Path) -> None:
    dirs = [tmp_path / str(i) for i in range(3)]
    jobs = []
    for d in dirs:
        d.mkdir()
        jobs.append(_approval(board, d, 5))
    with running(Conductor("c1", board, board.persistence or "", max_jobs=3)):
        wait_until(lambda: all(_waiting(board, j) for j in jobs), 30, "every job parked")
        board.send_event("approve-5", "all")
        wait_until(lambda: board_is_empty(board), 30, "every job woken and consumed")
    assert [read_log(d)[-1] for d in dirs] == ["after [('approval', 'all')]"] * 3


def test_a_parked_job_is_resumed_by_another_conductor(board: JobBoard, tmp_path: Path) -> None:
    job = _sleepy(board, tmp_path, 2.0)
    with running(Conductor("c1", board, board.persistence or "")):
        wait_until(lambda: _waiting(board, job), 20, "the job parked by c1")
    assert _waiting(board, job)  # c1 stopped: the parked job stays on the board
    with running(Conductor("c2", board, board.persistence or "")) as c2:
        wait_until(lambda: board_is_empty(board), 30, "c2 resumed and consumed the job")
        wait_until(lambda: c2.stats.consumed == 1, 5, "c2's consume counted")
        assert c2.stats.parked == 0
    assert [line.split()[0] for line in read_log(tmp_path)] == ["before", "after"]


def test_a_wait_that_times_out_under_a_conductor_reverts_the_flow(board: JobBoard, tmp_path: Path) -> None:
    job = _approval(board, tmp_path, 6, timeout=1.5)
    with running(Conductor("c1", board, board.persistence or "")) as conductor:
        wait_until(lambda: board_is_empty(board), 30, "the job consumed after its wait timed out")
        assert conductor.stats.parked == 1
    assert _flow_state(board, job) == "REVERTED"
    assert read_log(tmp_path) == ["before []", "revert before"]


def test_parking_is_not_counted_as_an_attempt(board: JobBoard, tmp_path: Path) -> None:
    """A flow that parks more often than ``max_attempts`` is not set aside for it."""
    job = board.post_flow("tests.wait_flows:naps", factory_args=[str(tmp_path), 5, 0.3], name="naps")
    with running(Conductor("c1", board, board.persistence or "")) as conductor:
        wait_until(lambda: board_is_empty(board), 60, "the job consumed")
        assert conductor.stats.parked >= board.max_attempts + 1 and conductor.stats.set_aside == 0
    assert _flow_state(board, job) == "SUCCESS"


def test_only_the_owner_parks_a_job_and_a_park_needs_a_reason(board: JobBoard, tmp_path: Path) -> None:
    job = _sleepy(board, tmp_path, 1.0)
    board.claim(job, "me")
    with pytest.raises(JobBoardError):
        board.park(job, "someone-else", time.time() + 60)
    with pytest.raises(JobBoardError, match="wake-up time or an event"):
        board.park(job, "me")
    board.park(job, "me", None, ["go"])
    assert board.state_of(job) is JobState.WAITING
    assert list(board.iterjobs(only_unclaimed=True, ensure_fresh=True)) == []  # not claimable yet
    board.send_event("go")
    wait_until(
        lambda: [j.uuid for j in board.iterjobs(only_unclaimed=True, ensure_fresh=True)] == [job.uuid],
        10,
        "the job claimable after its event",
    )
    board.claim(job, "other")
    assert board.find_owner(job) == "other"


@pytest.mark.postgres
def test_parking_with_postgresql_persistence(postgres_url: str, tmp_path: Path, board_name: str) -> None:
    board = boards.fetch(board_name, f"sqlite:///{tmp_path}/board.db", persistence=postgres_url)
    board.connect()
    try:
        job = _approval(board, tmp_path, 77)
        with running(Conductor("c1", board, postgres_url)):
            wait_until(lambda: _waiting(board, job), 20, "the job parked")
            board.send_event("approve-77", [1, 2])
            wait_until(lambda: board_is_empty(board), 20, "the job consumed")
        found = events.latest_events(backend_for(postgres_url), ["approve-77"])
        assert found["approve-77"].payload == [1, 2]
    finally:
        board.close()
    assert read_log(tmp_path)[-1] == "after [('approval', [1, 2])]"


@pytest.mark.slow
def test_a_conductor_killed_while_its_job_is_parked_loses_nothing(
    board: JobBoard, board_url: str, board_name: str, conductors: Conductors, tmp_path: Path
) -> None:
    """SIGKILL the conductor process that parked a sleeping job; another one resumes it at its time,
    with the deadline saved before the kill."""
    job = _sleepy(board, tmp_path, 3.0)
    extra = ["--board-name", board_name, "--log-level", "INFO"]
    conductors.start("c1", board_url, *extra)
    wait_until(lambda: _waiting(board, job), 30, "c1 parked the job")
    deadline = _saved_deadline(board, job)
    conductors.kill("c1")
    assert _waiting(board, job)  # parked jobs hold no claim: nothing to expire
    conductors.start("c2", board_url, *extra)
    wait_until(lambda: board_is_empty(board), 30, "c2 resumed and consumed the job")
    nap = _flow_detail(board, job).find_by_name("nap")
    assert nap is not None and nap.finished_at is not None
    assert deadline <= nap.finished_at.timestamp() < deadline + 1.0
    assert conductors.consumed(wait_for=[job.uuid]) == {job.uuid: 1}
    assert [line.split()[0] for line in read_log(tmp_path)] == ["before", "after"]


def _flow_detail(board: JobBoard, job: Job) -> FlowDetail:
    book = board.load_book(job)
    assert book is not None
    fd = book.find(job.flow_uuid or "")
    assert fd is not None
    return fd


def _saved_deadline(board: JobBoard, job: Job) -> float:
    nap = _flow_detail(board, job).find_by_name("nap")
    assert nap is not None
    return float(nap.meta["wait"]["deadline"])


def test_an_event_wakes_only_the_jobs_waiting_for_that_exact_name(board: JobBoard, tmp_path: Path) -> None:
    """Names are matched whole: no prefix, and SQL's LIKE wildcards in a name are plain characters."""
    exact = _sleepy(board, tmp_path, 1.0, name="exact")
    other = _sleepy(board, tmp_path, 1.0, name="other")
    board.claim(exact, "me")
    board.claim(other, "me")
    board.park(exact, "me", None, ["a_b%"])
    board.park(other, "me", None, ["a_b%-2", "zz"])

    def claimable() -> set[str]:
        return {j.name for j in board.iterjobs(only_unclaimed=True, ensure_fresh=True)}

    board.send_event("aXbY")
    board.send_event("a_b")
    time.sleep(0.2)
    assert claimable() == set()
    board.send_event("a_b%")
    wait_until(lambda: claimable() == {"exact"}, 10, "only the job waiting for 'a_b%' claimable")


def test_a_park_on_an_event_already_sent_leaves_the_job_claimable(board: JobBoard, tmp_path: Path) -> None:
    """The event came between the flow's last look and the park: the park finds it and wakes the job."""
    job = _sleepy(board, tmp_path, 1.0)
    board.claim(job, "me")
    events.send_event(backend_for(board.persistence or ""), "came-meanwhile", "x")
    board.park(job, "me", None, ["came-meanwhile"])
    wait_until(
        lambda: [j.uuid for j in board.iterjobs(only_unclaimed=True, ensure_fresh=True)] == [job.uuid],
        10,
        "the job claimable at once",
    )


def test_a_cancelled_parked_job_is_reverted_by_the_next_conductor_and_ends_cancelled(
    board: JobBoard, tmp_path: Path
) -> None:
    job = _sleepy(board, tmp_path, 3600.0)  # parked for an hour unless the cancel wakes it
    with running(Conductor("c1", board, board.persistence or "")):
        wait_until(lambda: _waiting(board, job), 20, "the sleeping job parked")
    board.cancel(job, "operator asked")
    with running(Conductor("c2", board, board.persistence or "")) as second:
        wait_until(lambda: board.state_of(job) is JobState.CANCELLED, 20, "the parked job cancelled")
        assert second.stats.cancelled == 1
    assert _flow_state(board, job) == "REVERTED"
    assert read_log(tmp_path) == ["before []", "revert before"]
