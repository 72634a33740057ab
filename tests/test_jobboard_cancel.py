"""``board.cancel(job, reason)`` on every board (SQLite, PostgreSQL, ZooKeeper: ``board`` in conftest): the
request is saved, the board holding the claim hears it within about a second, a conductor running the job
reverts its flow and ends the job CANCELLED; an unclaimed job is cancelled by the conductor that claims it.

The latency tests print what they measured (``-s`` shows it): from ``board.cancel`` in one client to the
holder's listener in another, and to the flow leaving RUNNING under a conductor.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor import Conductor
from flowkit.engines.persistence import backend_for
from flowkit.exceptions import CancelRefused, JobBoardError, NotFound
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.states import FlowState
from tests.support.conductors import Conductors, running
from tests.support.journal import Journal
from tests.support.wait import wait_until

LATENCY_BOUND_S = 2.0
"""What the tests hold a cancel to (the aim is about a second; ZooKeeper and NOTIFY are far quicker)."""


@pytest.fixture
def other(board: JobBoard, board_url: str, persistence_url: str) -> Iterator[JobBoard]:
    """A second client of the same board: the operator's, apart from the conductor's."""
    made = boards.fetch(board.name, board_url, persistence=persistence_url)
    made.connect()
    yield made
    made.close()


def _post(board: JobBoard, journal: Journal, n: int = 40, pause: float = 0.05, name: str = "slow") -> Job:
    store = {"journal": str(journal)}
    factory_kwargs = {"n": n, "pause": pause}
    return board.post_flow(
        "tests.support.cancel_flows:slow_steps", store=store, factory_kwargs=factory_kwargs, name=name
    )


def _flow_state(persistence_url: str, job: Job) -> FlowState:
    with backend_for(persistence_url).get_connection() as conn:
        return conn.get_flow_detail(job.flow_uuid or "").state


# -- the request ------------------------------------------------------------------------------------


def test_cancel_of_an_unclaimed_job_is_saved_and_the_first_reason_wins(
    board: JobBoard, other: JobBoard, tmp_path: Path
) -> None:
    job = _post(board, Journal(tmp_path / "journal"))
    assert board.cancel_requested(job) is None
    other.cancel(job.uuid, "not needed any more")  # by uuid, from another client
    other.cancel(job.uuid, "asked again")
    assert board.cancel_requested(job) == "not needed any more"
    assert board.state_of(job) is JobState.UNCLAIMED  # still offered: a conductor must revert its flow
    assert board.get_job(job.uuid).cancel_reason == "not needed any more"


def test_cancel_of_a_job_that_is_over_or_unknown_is_refused(board: JobBoard, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    done, trashed = _post(board, journal, name="done"), _post(board, journal, name="trashed")
    board.claim(done, "c1")
    board.consume(done, "c1")
    board.claim(trashed, "c1")
    board.trash(trashed, "c1", "not wanted")
    with pytest.raises(NotFound, match="no job"):
        board.cancel("00000000-0000-0000-0000-000000000000", "why not")
    with pytest.raises(CancelRefused, match="COMPLETE"):  # consumed, still in the board's history
        board.cancel(done, "too late")
    with pytest.raises(JobBoardError, match="TRASHED"):
        board.cancel(trashed, "too late")
    with pytest.raises(JobBoardError, match="reason"):
        board.cancel(_post(board, journal), "")


def test_the_holder_hears_a_cancel_from_another_client_at_once(
    board: JobBoard, other: JobBoard, tmp_path: Path
) -> None:
    heard: list[tuple[str, str, float]] = []
    board.add_cancel_listener(lambda uuid, reason: heard.append((uuid, reason, time.monotonic())))
    latencies = []
    for i in range(3):
        job = _post(board, Journal(tmp_path / "journal"), name=f"job{i}")
        board.claim(job, "c1")
        asked = time.monotonic()
        other.cancel(job.uuid, f"stop {i}")
        wait_until(lambda: len(heard) == i + 1, 10, "the holder to hear the cancel")  # noqa: B023
        uuid, reason, at = heard[-1]
        assert (uuid, reason) == (job.uuid, f"stop {i}")
        latencies.append(at - asked)
        board.mark_cancelled(job, "c1")
        assert board.state_of(job) is JobState.CANCELLED
        ended = other.get_job(job.uuid)
        assert ended.last_reason == f"stop {i}" and ended.cancel_reason == f"stop {i}"
    print(f"\n{type(board).__name__}: cancel heard by the holder after {_ms(latencies)}")
    assert statistics.median(latencies) < LATENCY_BOUND_S
    assert list(board.iterjobs(ensure_fresh=True)) == []  # cancelled jobs are not offered again
    assert board.claim_next("c2") is None
    assert len(heard) == 3  # each cancel told once


def test_only_the_owner_may_mark_a_job_cancelled(board: JobBoard, other: JobBoard, tmp_path: Path) -> None:
    job = _post(board, Journal(tmp_path / "journal"))
    board.claim(job, "c1")
    other.cancel(job, "stop")
    with pytest.raises(JobBoardError):
        other.mark_cancelled(job, "c2")
    assert board.state_of(job) is JobState.CLAIMED


# -- with a conductor -------------------------------------------------------------------------------


def test_a_conductor_reverts_a_running_job_and_ends_it_cancelled(
    board: JobBoard, other: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    latencies = []
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.2)) as conductor:
        for i in range(3):
            job = _post(board, journal, name=f"job{i}")
            wait_until(lambda: _flow_state(persistence_url, job) is FlowState.RUNNING, 20, "the flow to run")  # noqa: B023
            wait_until(lambda: len(journal.names("execute")) >= 2, 20, "a few steps to run")
            asked = time.monotonic()
            other.cancel(job, "operator asked")
            wait_until(lambda: _flow_state(persistence_url, job) is not FlowState.RUNNING, 10, "the cancel")  # noqa: B023
            latencies.append(time.monotonic() - asked)
            wait_until(lambda: other.state_of(job) is JobState.CANCELLED, 20, "the job to end CANCELLED")  # noqa: B023
            assert _flow_state(persistence_url, job) is FlowState.REVERTED
            assert other.get_job(job.uuid).last_reason == "operator asked"
            ran = journal.names("execute")
            assert 0 < len(ran) < 40  # stopped half way, not run to its end
            assert sorted(journal.names("revert")[-len(ran) :]) == sorted(
                ran
            )  # every step that ran is undone
            journal.path.rename(tmp_path / f"journal-{i}")  # the next job's steps have the same names
    assert conductor.stats.cancelled == 3 and conductor.stats.consumed == 0
    print(f"\n{type(board).__name__}: cancel to flow stopped under a conductor after {_ms(latencies)}")
    assert statistics.median(latencies) < LATENCY_BOUND_S


def test_an_unclaimed_cancelled_job_is_reverted_by_the_next_conductor(
    board: JobBoard, other: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    """Never run: ends CANCELLED with nothing executed. Half run, then given back: what ran is reverted."""
    journal = Journal(tmp_path / "journal")
    fresh = _post(board, journal, name="fresh")
    other.cancel(fresh, "never mind")
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.2)) as conductor:
        wait_until(lambda: other.state_of(fresh) is JobState.CANCELLED, 20, "the fresh job cancelled")
    assert journal.events == []
    assert _flow_state(persistence_url, fresh) is FlowState.REVERTED
    assert conductor.stats.cancelled == 1

    half = _post(board, journal, n=20, pause=0.05, name="half")
    with running(Conductor("c2", board, persistence_url, wait_timeout=0.2)):
        wait_until(lambda: len(journal.names("execute")) >= 3, 20, "a few steps of the job to run")
    # c2 stopped: the flow is suspended and the job given back, unclaimed, half run
    assert other.state_of(half) is JobState.UNCLAIMED
    ran = journal.names("execute")
    other.cancel(half, "stop it")
    with running(Conductor("c3", board, persistence_url, wait_timeout=0.2)):
        wait_until(lambda: other.state_of(half) is JobState.CANCELLED, 20, "the half-run job cancelled")
    assert journal.names("execute") == ran  # nothing ran again forward
    assert sorted(journal.names("revert")) == sorted(ran)
    assert _flow_state(persistence_url, half) is FlowState.REVERTED


def test_a_cancel_that_comes_after_the_flow_succeeded_leaves_the_job_complete(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    job = _post(board, journal, n=1, pause=0.0)
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.2)):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 20, "the job consumed")
    with pytest.raises(CancelRefused, match="COMPLETE"):
        board.cancel(job, "too late")


def _ms(values: list[float]) -> str:
    shown = ", ".join(f"{v * 1000:.0f}" for v in values)
    return f"median {statistics.median(values) * 1000:.0f} ms ({shown} ms)"


# -- conductor processes ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_conductor_killed_while_reverting_a_cancel_is_taken_over(
    board_url: str,
    board_name: str,
    persistence_url: str,
    conductors: Conductors,
    tmp_path: Path,
) -> None:
    """SIGKILL mid-cancel: the next conductor resumes the revert (the cancel was saved), never runs forward,
    and ends the job CANCELLED."""
    url = board_url if board_url.startswith("zookeeper") else f"{board_url}?lease=2"
    journal = Journal(tmp_path / "journal")
    with boards.fetch(board_name, url, persistence=persistence_url) as operator:
        store = {"journal": str(journal)}
        job = operator.post_flow(
            "tests.support.cancel_flows:slow_steps",
            store=store,
            factory_kwargs={"n": 30, "pause": 0.05, "revert_pause": 0.3},
        )
        conductors.start("a", url, "--board-name", board_name)
        wait_until(lambda: len(journal.names("execute")) >= 5, 30, "a to run a few steps")
        operator.cancel(job, "abort")
        wait_until(lambda: len(journal.names("revert")) >= 2, 30, "a to revert a few steps")
        conductors.kill("a")
        ran = journal.names("execute")
        conductors.start("b", url, "--board-name", board_name)
        wait_until(lambda: operator.state_of(job) is JobState.CANCELLED, 60, "b to end the job CANCELLED")
    assert journal.names("execute") == ran  # nothing ran forward after the cancel, before or after the kill
    assert set(journal.names("reverted")) == set(ran)  # every step that ran is undone (one maybe twice)
    assert _flow_state(persistence_url, job) is FlowState.REVERTED
    # logged after the board has it: the state may read CANCELLED just before the line is written
    wait_until(lambda: "cancelled job" in conductors.log("b"), 10, "b to log the cancel")


def test_a_job_whose_flow_was_already_cancelled_is_not_run_again(
    board: JobBoard, other: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    """A conductor died after the cancel's revert ended but before it marked the job: the next one must
    not run the REVERTED flow again from its start (what ``run()`` does with a REVERTED flow)."""
    from flowkit import engines
    from flowkit.exceptions import Cancelled

    journal = Journal(tmp_path / "journal")
    job = _post(board, journal, n=3, pause=0.0)
    engine = engines.load_from_detail(job.flow_uuid or "", backend=persistence_url)
    engine.cancel("abort")
    with pytest.raises(Cancelled):
        engine.run()  # what the dead conductor did: the flow is REVERTED, the cancel saved with it
    other.cancel(job, "abort")
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.2)) as conductor:
        wait_until(lambda: other.state_of(job) is JobState.CANCELLED, 20, "the job to end CANCELLED")
    assert journal.events == []
    assert conductor.stats.cancelled == 1
    assert _flow_state(persistence_url, job) is FlowState.REVERTED
