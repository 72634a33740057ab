"""The engine's parts on their own: a run's revert wave, retry decisions, delay timers.

The end-to-end behaviour is in test_engine_*.py and test_retry.py; these check each part
against a compiled flow and a storage, without an engine around it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, retry
from flowkit.compiler import compile_flow
from flowkit.engines.dispatch import Dispatcher
from flowkit.engines.retrying import DelayTimers, ask_retry
from flowkit.engines.revert import revert_nodes
from flowkit.engines.run import Run
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.notifier import Notifier
from flowkit.states import AtomState
from flowkit.storage import Storage

S = AtomState


class Undo(Task):
    """Records its revert in ``log``; ``fail_revert`` makes the revert raise."""

    def __init__(self, name: str, log: list[str], fail_revert: bool = False) -> None:
        super().__init__(name)
        self.log = log
        self.fail_revert = fail_revert

    def execute(self) -> int:
        return 1

    def revert(self, **kwargs: Any) -> None:
        self.log.append(self.name)
        if self.fail_revert:
            raise RuntimeError(f"{self.name} cannot be undone")


def _run_after_success(flow: Flow) -> Run:
    """A run over ``flow`` whose atoms all ran (SUCCESS, finished in node order)."""
    c = compile_flow(flow)
    st = Storage(c)
    for i in c.order:
        st.set_atom_state(i, S.RUNNING)
        st.set_atom_state(i, S.SUCCESS)
    return Run(c, st, Dispatcher(), Notifier(), Notifier(), threading.Event(), threading.Event(), 1 << 30)


def _diamond(log: list[str], failing: str | None = None) -> GraphFlow:
    a, b, c, d = (Undo(n, log, fail_revert=n == failing) for n in "abcd")
    g = GraphFlow("diamond")
    g.add(a, b, c, d)
    g.link(a, b)
    g.link(a, c)
    g.link(b, d)
    return g


def test_revert_wave_undoes_successors_first_and_each_atom_once() -> None:
    log: list[str] = []
    run = _run_after_success(_diamond(log))
    wave = yield_all(revert_nodes(run, range(len(run.c.atoms)), {}))
    assert sorted(log) == ["a", "b", "c", "d"]
    assert log.index("d") < log.index("b") < log.index("a")
    assert log.index("c") < log.index("a")
    assert wave.done and not wave.failed and not run.revert_failed
    assert all(s is S.REVERTED for s in run.st.states)


def test_a_failed_revert_holds_back_its_predecessors_not_independent_branches() -> None:
    log: list[str] = []
    run = _run_after_success(_diamond(log, failing="b"))
    wave = yield_all(revert_nodes(run, range(len(run.c.atoms)), {}))
    states = dict(zip(run.c.names, run.st.states, strict=True))
    assert states == {"a": S.SUCCESS, "b": S.REVERT_FAILURE, "c": S.REVERTED, "d": S.REVERTED}
    assert wave.failed and run.revert_failed
    assert "a" not in log  # b after it could not be undone: a stays as it is for an operator


def test_revert_wave_only_touches_its_nodes() -> None:
    log: list[str] = []
    flow = LinearFlow("lin")
    flow.add(*(Undo(n, log) for n in "xyz"))
    run = _run_after_success(flow)
    yield_all(revert_nodes(run, range(1, 3), {}))
    assert log == ["z", "y"]
    assert run.st.states[0] is S.SUCCESS


class Picky(retry.Retry):
    """Retries a ValueError, reverts anything else; raises when told to."""

    def __init__(self, explode: bool = False) -> None:
        super().__init__("picky")
        self.explode = explode

    def on_failure(self, history: Any, *args: Any, **kwargs: Any) -> retry.Decision:
        if self.explode:
            raise KeyError("no decision")
        return retry.RETRY if history.caused_by(ValueError) else retry.REVERT


def _failure(exc: Exception) -> Failure:
    try:
        raise exc
    except Exception:
        return Failure()


@pytest.mark.parametrize(
    ("exc", "decision"), [(ValueError("flaky"), retry.RETRY), (TypeError("bad"), retry.REVERT)]
)
def test_ask_retry_is_a_function_of_the_flow_and_its_storage(
    exc: Exception, decision: retry.Decision
) -> None:
    flow = LinearFlow("scoped", retry=Picky())
    flow.add(Undo("t", []))
    c = compile_flow(flow)
    st = Storage(c)
    r = c.index["picky"]
    everything: dict[str, Failure] = {}
    assert ask_retry(c, st, r, {"t": _failure(exc)}, everything) is decision
    assert len(st.histories[r]) == 1  # the failures are recorded before the controller is asked
    assert everything == {}


def test_a_controller_that_raises_decides_revert_all_and_its_failure_is_kept() -> None:
    flow = LinearFlow("scoped", retry=Picky(explode=True))
    flow.add(Undo("t", []))
    c = compile_flow(flow)
    st = Storage(c)
    everything: dict[str, Failure] = {}
    decision = ask_retry(c, st, c.index["picky"], {"t": _failure(ValueError())}, everything)
    assert decision is retry.REVERT_ALL
    assert everything["picky"].check(KeyError) is KeyError
    assert everything["picky"].atom_name == "picky"


def test_delay_timers_fire_in_due_order_and_drop_a_restarted_scope() -> None:
    timers = DelayTimers()
    assert not timers and timers.timeout() is None
    timers.add(0.02, 5)
    timers.add(0.0, 3)
    timers.add(60.0, 9)
    assert timers and timers.timeout() == 0.0
    ready: deque[int] = deque()
    time.sleep(0.05)
    timers.fire(ready)
    assert list(ready) == [3, 5]
    remaining = timers.timeout()
    assert remaining is not None and 30.0 < remaining <= 60.0
    timers.drop(range(8, 10))
    assert not timers and timers.timeout() is None


def yield_all(gen: Any) -> Any:
    """Drive a run's generator to its end; return what it returns."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
