"""Resume repairs a record no engine could have left: a finished flow whose atoms are not all finished.

The recorder never saves one (a flow's final state is written after every atom's, durably), but a
database that lost writes can show one. The record is made here by hand, then resumed: the engine
must take the flow as interrupted, warn naming it, and run (or revert) only what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail
from flowkit.states import AtomState, FlowState
from tests.support.persistence import BACKEND_KINDS, backend_url, fresh_backend, saved_flow, saved_states


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = fresh_backend(backend_url(request.param, request, tmp_path))
    yield b
    b.close()


class Boom(Exception):
    pass


class Step(Task):
    """Logs ``execute <name>`` / ``revert <name>``; the one made with ``fail`` raises Boom."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        super().__init__(name=name)
        self.log, self.fail = log, fail

    def execute(self) -> str:
        self.log.append(f"execute {self.name}")
        if self.fail:
            raise Boom(self.name)
        return f"made by {self.name}"

    def revert(self, **kwargs: Any) -> None:
        self.log.append(f"revert {self.name}")


def _flow(log: list[str], fail: str = "") -> LinearFlow:
    return LinearFlow("repair").add(*(Step(n, log, fail=n == fail) for n in ("a", "b", "c", "d")))


def _lose(backend: Backend, fd: FlowDetail, **states: AtomState) -> FlowDetail:
    """Save atoms back in earlier states (as if their last writes were lost); the flow row is kept."""
    saved = saved_flow(backend, fd.uuid)
    for name, state in states.items():
        ad = saved.find_by_name(name)
        assert ad is not None
        ad.state = state
        if state in (AtomState.PENDING, AtomState.RUNNING):
            ad.results = None
        ad.revert_results = None
    with backend.get_connection() as conn:
        conn.update_flow_details(saved)
    return saved_flow(backend, fd.uuid)


def test_a_success_flow_with_unfinished_atoms_runs_what_is_left(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    fd = FlowDetail("repair")
    engines.load(_flow(log), backend=backend, flow_detail=fd).run()
    broken = _lose(backend, fd, b=AtomState.SUCCESS, c=AtomState.RUNNING, d=AtomState.PENDING)
    assert broken.state is FlowState.SUCCESS

    log.clear()
    engine = engines.load(_flow(log), backend=backend, flow_detail=broken)
    with caplog.at_level(logging.WARNING, logger="flowkit.persistence.recorder"):
        engine.prepare()
    assert engine.storage.flow_state is FlowState.SUSPENDED  # taken as interrupted, not as done
    assert [r for r in caplog.records if "'repair'" in r.getMessage() and "c, d" in r.getMessage()]
    engine.run()
    assert log == ["execute c", "execute d"]
    assert saved_states(backend, fd.uuid) == dict.fromkeys("abcd", "SUCCESS")
    saved = saved_flow(backend, fd.uuid)
    assert saved.state is FlowState.SUCCESS
    assert {ad.name: ad.results for ad in saved} == {n: f"made by {n}" for n in "abcd"}


def test_a_reverted_flow_with_unreverted_atoms_goes_on_reverting(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    fd = FlowDetail("repair")
    with pytest.raises(Boom):
        engines.load(_flow(log, fail="d"), backend=backend, flow_detail=fd).run()
    assert saved_states(backend, fd.uuid) == dict.fromkeys("abcd", "REVERTED")
    broken = _lose(backend, fd, a=AtomState.SUCCESS, b=AtomState.REVERTING)
    assert broken.state is FlowState.REVERTED

    log.clear()
    engine = engines.load(_flow(log, fail="d"), backend=backend, flow_detail=broken)
    with caplog.at_level(logging.WARNING, logger="flowkit.persistence.recorder"):
        engine.prepare()
    assert [r for r in caplog.records if "'repair'" in r.getMessage() and "a, b" in r.getMessage()]
    with pytest.raises(Boom):  # the flow's saved failure, as when it first reverted
        engine.run()
    assert log == ["revert b", "revert a"]  # nothing runs forward again
    assert saved_states(backend, fd.uuid) == dict.fromkeys("abcd", "REVERTED")
    assert saved_flow(backend, fd.uuid).state is FlowState.REVERTED


def test_a_consistent_finished_flow_is_not_repaired(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    fd = FlowDetail("repair")
    engines.load(_flow(log), backend=backend, flow_detail=fd).run()
    engine = engines.load(_flow(log), backend=backend, flow_detail=saved_flow(backend, fd.uuid))
    with caplog.at_level(logging.WARNING, logger="flowkit.persistence.recorder"):
        engine.prepare()
    assert engine.storage.flow_state is FlowState.SUCCESS
    assert not caplog.records
