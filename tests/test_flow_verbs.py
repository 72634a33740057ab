"""Operator verbs on flows, in Python: retry a REVERTED or FAILED flow from its start (same flow detail,
same store), resume a SUSPENDED one; both post a job a conductor runs, on every board."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor import Conductor
from flowkit.exceptions import AmbiguousPrefixError, InvalidStateError, JobBoardError, NotFound
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard.flow_verbs import resume_flow, retry_flow
from flowkit.persistence.backends import Backend
from flowkit.persistence.lookup import find_flow_detail
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.shared import backend_for
from flowkit.states import AtomState, FlowState
from tests.support.conductors import running
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(90)


def _state(persistence_url: str, flow_uuid: str) -> FlowState:
    with backend_for(persistence_url).get_connection() as conn:
        return conn.get_flow_detail(flow_uuid).state


def _post_gated(board: JobBoard, tmp_path: Path) -> tuple[Path, Job, str]:
    """Post ``tests.ops_flows:gated`` with its gate file in place: run, it fails and reverts, which is
    where the retry tests start (they unlink the gate to let a retried run succeed)."""
    gate = tmp_path / "gate"
    gate.touch()
    job = board.post_flow("tests.ops_flows:gated", store={"gate": str(gate)})
    return gate, job, job.flow_uuid or ""


def test_retry_runs_a_reverted_flow_again_from_its_start(
    board: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    gate, job, flow_uuid = _post_gated(board, tmp_path)
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.1)):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the reverted flow's job consumed")
        assert _state(persistence_url, flow_uuid) is FlowState.REVERTED
        with pytest.raises(InvalidStateError, match="REVERTED"):
            resume_flow(board, flow_uuid[:8])
        gate.unlink()
        again = board.retry_flow(flow_uuid[:8])
        assert again.flow_uuid == flow_uuid and again.details["store"] == {"gate": str(gate)}
        wait_until(lambda: _state(persistence_url, flow_uuid) is FlowState.SUCCESS, 30, "the retried flow")
    fd = find_flow_detail(backend_for(persistence_url), flow_uuid)
    assert {ad.name: ad.state for ad in fd} == {"prepare": AtomState.SUCCESS, "gate": AtomState.SUCCESS}
    with pytest.raises(InvalidStateError, match="SUCCESS"):
        retry_flow(board, flow_uuid)


def test_retry_resets_a_flow_before_posting_it(board: JobBoard, persistence_url: str, tmp_path: Path) -> None:
    _, job, flow_uuid = _post_gated(board, tmp_path)
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.1)):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the reverted flow's job consumed")
    retry_flow(board, flow_uuid)
    fd = find_flow_detail(backend_for(persistence_url), flow_uuid)
    assert fd.state is FlowState.PENDING and not fd.failures
    assert all(ad.state is AtomState.PENDING and ad.failure is None for ad in fd)
    with pytest.raises(JobBoardError, match="already has job"):
        retry_flow(board, flow_uuid)  # PENDING anyway, but the job on the board is what is said


def test_resume_posts_a_job_for_a_suspended_flow(board: JobBoard, persistence_url: str) -> None:
    job = board.post_flow("tests.ops_flows:napping", store={"seconds": 0.3}, factory_kwargs={"steps": 4})
    flow_uuid = job.flow_uuid or ""
    board.claim(job, "operator-test")
    board.trash(job, "operator-test", "stand-in for a conductor that stopped")
    backend = backend_for(persistence_url)
    with backend.get_connection() as conn:
        fd = conn.get_flow_detail(flow_uuid)
        fd.state = FlowState.SUSPENDED
        conn.update_flow_details(fd)
    again = resume_flow(board, flow_uuid[:10])
    assert again.flow_uuid == flow_uuid
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.1)):
        wait_until(lambda: _state(persistence_url, flow_uuid) is FlowState.SUCCESS, 30, "the resumed flow")


def test_unknown_flow_is_not_found(board: JobBoard) -> None:
    with pytest.raises(NotFound, match="feedbeef"):
        retry_flow(board, "feedbeef")


def test_flow_details_are_found_by_prefix_on_every_backend(backend: Backend) -> None:
    book = LogBook("b")
    details = [book.add(FlowDetail(f"f{i}")) for i in range(40)]
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    target = details[3]
    assert find_flow_detail(backend, target.uuid[:13]).uuid == target.uuid
    assert find_flow_detail(backend, target.uuid.upper()).uuid == target.uuid
    first = max("0123456789abcdef", key=lambda c: sum(d.uuid[0] == c for d in details))
    with pytest.raises(AmbiguousPrefixError, match="flow detail prefix"):
        find_flow_detail(backend, first)
    for missing in ("%", "_", "zz"):
        with pytest.raises(NotFound):
            find_flow_detail(backend, missing)
