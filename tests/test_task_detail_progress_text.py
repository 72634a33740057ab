"""A task detail's printed form shows its progress worked out from its state (TaskFlow writes
``progress`` into every task's meta; flowkit writes nothing and prints the same line)."""

from __future__ import annotations

from flowkit.persistence.models import RetryDetail, TaskDetail
from flowkit.states import AtomState


def test_a_finished_task_shows_full_progress_and_a_started_one_what_it_reported() -> None:
    assert "+ progress = 100.00%" in TaskDetail("t", state=AtomState.SUCCESS).pformat()
    assert "+ progress = 100.00%" in TaskDetail("t", state=AtomState.REVERTED).pformat()
    assert "+ progress = 0.00%" in TaskDetail("t", state=AtomState.FAILURE).pformat()
    assert "+ progress = 50.00%" in TaskDetail("t", state=AtomState.RUNNING, meta={"progress": 0.5}).pformat()
    assert "progress" not in TaskDetail("t").pformat()  # pending: never started
    assert "metadata" not in RetryDetail("r", state=AtomState.SUCCESS).pformat()


def test_the_progress_line_is_first_and_meta_is_not_written() -> None:
    detail = TaskDetail("t", state=AtomState.SUCCESS, meta={"who": "me"})
    lines = detail.pformat(linesep="\n").splitlines()
    assert lines[-3:] == [" - metadata:", "   + progress = 100.00%", "   + who = me"]
    assert detail.meta == {"who": "me"}
