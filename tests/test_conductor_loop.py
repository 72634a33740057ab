"""The conductor in this process, on every board (SQLite, PostgreSQL, ZooKeeper: ``board`` in conftest) with
SQLite persistence: what it does with each job."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conductor import Conductor
from conductor.loop import Stats
from flowkit.engines.persistence import backend_for
from flowkit.exceptions import ConductorError
from flowkit.jobboard import ClaimEvent, Job, JobBoard, JobState
from tests.job_flows import trace_of, violations
from tests.support.boards import board_is_empty
from tests.support.conductors import running
from tests.support.wait import wait_until


def _post(board: JobBoard, tmp_path: Path, key: str, n: int = 2, delay: float = 0.0) -> Job:
    store = {"job_key": key, "trace_dir": str(tmp_path), "delay": delay}
    return board.post_flow("tests.job_flows:steps", store=store, factory_kwargs={"n": n}, name=key)


def _flow_state(persistence_url: str, job: Job) -> str:
    with backend_for(persistence_url).get_connection() as conn:
        return str(conn.get_logbook(job.book_uuid or "").find(job.flow_uuid or "").state)  # type: ignore[union-attr]


def _starts(tmp_path: Path, key: str) -> list[str]:
    return [step for event, step, _ in trace_of(tmp_path, key) if event == "start"]


def test_runs_each_job_and_consumes_it(board: JobBoard, persistence_url: str, tmp_path: Path) -> None:
    jobs = [_post(board, tmp_path, f"job{i}") for i in range(3)]
    with running(Conductor("c1", board, persistence_url)) as conductor:
        wait_until(lambda: board_is_empty(board), 20, "every job consumed")
    assert conductor.stats.consumed == 3
    for job in jobs:
        assert job.state is JobState.COMPLETE
        assert _flow_state(persistence_url, job) == "SUCCESS"
        assert _starts(tmp_path, job.name) == ["step-0", "step-1"]
    assert violations(tmp_path) == []


def test_a_failed_flow_is_consumed_with_its_failure_saved(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    job = board.post_flow("tests.job_flows:failing", store={"job_key": "f", "trace_dir": str(tmp_path)})
    with running(Conductor("c1", board, persistence_url)):
        wait_until(lambda: board_is_empty(board), 20, "the job consumed")
    assert _flow_state(persistence_url, job) == "REVERTED"
    flow_detail = board.load_book(job).find(job.flow_uuid)
    [boom] = [a for a in flow_detail if a.name == "boom"]
    assert boom.failure is not None and "boom" in boom.failure.exception_str


def test_disallowed_factory_is_set_aside_without_being_imported(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    forbidden = board.post_flow("tests.job_flows_forbidden:make", name="forbidden")
    good = _post(board, tmp_path, "good")
    with running(Conductor("c1", board, persistence_url, allow=["tests.job_flows"])) as conductor:
        wait_until(lambda: board_is_empty(board), 20, "the board emptied")
    assert good.state is JobState.COMPLETE
    assert forbidden.state is JobState.SET_ASIDE
    [aside] = board.set_aside_jobs()
    assert "is not allowed on conductor 'c1' (allowed: tests.job_flows)" in (aside.last_reason or "")
    assert "tests.job_flows_forbidden" not in sys.modules
    assert conductor.stats.set_aside == 1 and conductor.stats.consumed == 1


def test_malformed_jobs_are_set_aside_and_the_conductor_goes_on(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    no_book = board.post("no-book")
    missing_book = board.post("missing-book", book=SimpleNamespace(uuid="nope", name="nope"))
    unbuildable = board.post_flow("tests.job_flows:no_such_factory", name="unbuildable")
    good = _post(board, tmp_path, "good")
    with running(Conductor("c1", board, persistence_url)):
        wait_until(lambda: board_is_empty(board), 20, "the board emptied")
    assert good.state is JobState.COMPLETE
    reasons = {j.name: j.last_reason or "" for j in board.set_aside_jobs()}
    assert "names no logbook" in reasons[no_book.name]
    assert "logbook nope is not in persistence" in reasons[missing_book.name]
    assert "no attribute 'no_such_factory'" in reasons[unbuildable.name]


def test_a_posted_flow_whose_flow_detail_is_gone_is_set_aside_not_created_again(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    """The job carries its factory, so the conductor reads the flow detail only in the engine's
    restore: that read must still refuse a flow detail that is gone, and write nothing."""
    gone = _post(board, tmp_path, "gone")
    assert gone.factory == {"name": "tests.job_flows:steps", "args": [], "kwargs": {"n": 2}}
    with backend_for(persistence_url).get_connection() as conn:
        conn.destroy_logbook(gone.book_uuid or "")
    good = _post(board, tmp_path, "good")
    with running(Conductor("c1", board, persistence_url)) as conductor:
        wait_until(lambda: board_is_empty(board), 20, "the board emptied")
    assert good.state is JobState.COMPLETE and gone.state is JobState.SET_ASIDE
    [aside] = board.set_aside_jobs()
    assert f"flow detail {gone.flow_uuid} is not in persistence" in (aside.last_reason or "")
    assert conductor.stats.set_aside == 1 and _starts(tmp_path, "gone") == []
    with backend_for(persistence_url).get_connection() as conn:
        assert gone.flow_uuid not in {fd.uuid for book in conn.get_logbooks() for fd in book}


def test_stop_suspends_the_flow_and_gives_the_job_back(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    job = _post(board, tmp_path, "long", n=5, delay=0.2)
    with running(Conductor("c1", board, persistence_url)):
        wait_until(lambda: "step-1" in _starts(tmp_path, "long"), 20, "step-1 to start")
    again = board.get_job(job.uuid)
    assert again.state is JobState.UNCLAIMED
    assert again.attempts == 0 and "stopped" in (again.last_reason or "")  # not counted against the job
    assert _flow_state(persistence_url, job) == "SUSPENDED"
    done_before = len(_starts(tmp_path, "long"))
    assert done_before < 5
    with running(Conductor("c2", board, persistence_url)):
        wait_until(lambda: board_is_empty(board), 20, "the job finished by c2")
    assert _starts(tmp_path, "long") == [f"step-{i}" for i in range(5)]  # nothing ran twice


def test_a_claim_in_doubt_pauses_the_flow_until_confirmed(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    job = _post(board, tmp_path, "doubt", n=6, delay=0.1)
    with running(Conductor("c1", board, persistence_url)) as conductor:
        wait_until(lambda: "step-1" in _starts(tmp_path, "doubt"), 20, "step-1 to start")
        conductor._on_claims(ClaimEvent.IN_DOUBT, frozenset({job.uuid}))
        time.sleep(0.5)
        paused_at = _starts(tmp_path, "doubt")
        time.sleep(0.4)
        assert _starts(tmp_path, "doubt") == paused_at and len(paused_at) < 6
        conductor._on_claims(ClaimEvent.CONFIRMED, frozenset({job.uuid}))
        wait_until(lambda: board_is_empty(board), 20, "the job finished")
    assert _starts(tmp_path, "doubt") == [f"step-{i}" for i in range(6)]


def test_a_lost_claim_is_left_to_others(board: JobBoard, persistence_url: str, tmp_path: Path) -> None:
    job = _post(board, tmp_path, "lost", n=6, delay=0.1)
    with running(Conductor("c1", board, persistence_url)) as conductor:
        wait_until(lambda: "step-1" in _starts(tmp_path, "lost"), 20, "step-1 to start")
        conductor._on_claims(ClaimEvent.LOST, frozenset({job.uuid}))
        wait_until(lambda: conductor.stats.lost == 1, 5, "the conductor to drop the job")
        assert len(_starts(tmp_path, "lost")) < 6
        assert job.state is JobState.CLAIMED  # nobody consumed it: the (real) claim is still there
    assert conductor.stats.consumed == 0


def test_max_jobs_runs_jobs_side_by_side(board: JobBoard, persistence_url: str, tmp_path: Path) -> None:
    for i in range(3):
        _post(board, tmp_path, f"par{i}", n=1, delay=0.6)
    started = time.monotonic()
    with running(Conductor("c1", board, persistence_url, max_jobs=3)):
        wait_until(lambda: board_is_empty(board), 20, "every job consumed")
    assert time.monotonic() - started < 1.6  # one after another would take 1.8 s and more


@pytest.mark.parametrize(
    ("factory", "why"),
    [("missing_requirement", "requires 'never_provided'"), ("cyclic", "dependency cycle")],
)
def test_a_flow_that_does_not_compile_or_validate_is_set_aside_at_once(
    board: JobBoard, persistence_url: str, tmp_path: Path, factory: str, why: str
) -> None:
    bad = board.post_flow(f"tests.job_flows:{factory}", name="bad")
    good = _post(board, tmp_path, "good")
    with running(Conductor("c1", board, persistence_url)) as conductor:
        wait_until(lambda: board_is_empty(board), 20, "the board emptied")
    assert good.state is JobState.COMPLETE
    [aside] = board.set_aside_jobs()
    assert aside.uuid == bad.uuid
    assert why in (aside.last_reason or "")
    assert aside.attempts <= 1  # set aside on its first claim, not after max_attempts abandons
    assert conductor.stats.abandoned == 0 and conductor.stats.set_aside == 1


def test_stats_counts_every_increment_from_many_threads() -> None:
    stats = Stats()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(target=lambda: [stats.add("consumed") for _ in range(20000)]) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert stats.consumed == 8 * 20000


@pytest.mark.parametrize("event", [ClaimEvent.LOST, ClaimEvent.IN_DOUBT])
def test_a_claim_event_while_claiming_is_not_dropped(
    board: JobBoard, persistence_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, event: ClaimEvent
) -> None:
    """The board may report on a claim before claim_next has returned it to the conductor."""
    job = _post(board, tmp_path, "early", n=2)
    claim_next = board.claim_next

    def claim_then_report(who: str) -> Job | None:
        claimed = claim_next(who)
        if claimed is not None:
            board._emit(event, frozenset({claimed.uuid}))
        return claimed

    monkeypatch.setattr(board, "claim_next", claim_then_report)
    with running(Conductor("c1", board, persistence_url)) as conductor:
        if event is ClaimEvent.LOST:
            wait_until(lambda: conductor.stats.lost == 1, 10, "the conductor to drop the job")
        else:
            time.sleep(1.0)
        assert _starts(tmp_path, "early") == []  # it never ran
        assert board.get_job(job.uuid).state is JobState.CLAIMED
    assert conductor.stats.consumed == 0


def test_max_jobs_below_one_is_a_conductor_error(board: JobBoard, persistence_url: str) -> None:
    with pytest.raises(ConductorError, match="max_jobs must be at least 1, got 0"):
        Conductor("c1", board, persistence_url, max_jobs=0)
