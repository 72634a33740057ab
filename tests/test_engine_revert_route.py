"""The serial engine's plain revert route (``RevertWave.go``) against the general one, on random flows.

With nobody to tell, the revert wave calls a plain task's revert itself, in its loop, instead of going
through ``start``, ``Dispatcher.submit`` and ``reverted``. These tests run the same random flows both ways
(the general route forced by a dispatcher that offers no plain classes) and compare everything a user can
see: the calls and their order, each revert's arguments and context, the atoms' states and revert
results, the steps of ``run_iter``, the flow's end and what ``run()`` raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow, engines
from flowkit.context import current
from flowkit.engines.dispatch import Dispatcher
from flowkit.engines.revert import RevertWave
from flowkit.flow import Flow
from flowkit.retry import Times
from flowkit.states import ATOM_TRANSITIONS, AtomState, FlowState

Log = list[tuple[Any, ...]]


class Boom(Exception):
    """A task's own failure (execute or revert)."""


def _seen(name: str, log: Log, what: str, **kwargs: Any) -> None:
    """One call, as the task saw it: its arguments (flow_failures by name) and its context."""
    ctx = current()
    args = {k: sorted(v) if k == "flow_failures" else repr(v) for k, v in kwargs.items()}
    log.append((what, name, args, ctx.atom_name if ctx is not None else None))


class Step(Task):
    """``revert(self, *args, **kwargs)``, TaskFlow's usual signature; it empties the ``flow_failures``
    it gets (the next revert must still see them all)."""

    def __init__(self, log: Log, fail: bool = False, revert_fail: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log, self.fail, self.revert_fail = log, fail, revert_fail

    def execute(self, **kwargs: Any) -> Any:
        _seen(self.name, self.log, "execute", **kwargs)
        if self.fail:
            raise Boom(self.name)
        return f"out-{self.name}"

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        _seen(self.name, self.log, "revert", **kwargs)
        kwargs.get("flow_failures", {}).clear()
        if self.revert_fail:
            raise Boom(f"revert {self.name}")
        return f"undone-{self.name}"


class Bare(Step):
    def revert(self) -> None:  # type: ignore[override]
        _seen(self.name, self.log, "revert")


class ResultOnly(Step):
    def revert(self, result: Any) -> str:  # type: ignore[override]
        _seen(self.name, self.log, "revert", result=result)
        return "r"


class Bound(Step):
    """Its revert takes an argument bound from storage besides the special ones."""

    def execute(self, x: Any) -> Any:  # type: ignore[override]
        return super().execute(x=x)

    def revert(self, x: Any, result: Any, flow_failures: Any) -> Any:  # type: ignore[override]
        return super().revert(x=x, result=result, flow_failures=flow_failures)


class Async(Step):
    """An async revert: never plain, so the general route, between plain ones."""

    async def revert(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().revert(*args, **kwargs)


def _task(rng: random.Random, log: Log, name: str) -> Task:
    kind = rng.choice((Step, Step, Step, Bare, ResultOnly, Bound, Async))
    options: dict[str, Any] = {"name": name, "provides": f"v-{name}"}
    if rng.random() < 0.1:
        options["timeout"] = 30.0  # a timed call is not plain either
    if kind is Step and rng.random() < 0.15:
        options["inject"] = {"extra": name}
        options["requires"] = ["extra"]
    if kind is Bound:
        options["requires"] = ["x"]
    return kind(log, fail=rng.random() < 0.08, revert_fail=rng.random() < 0.04, **options)


def _flow(rng: random.Random, log: Log, counter: list[int], depth: int = 0) -> Flow:
    kind = rng.choice((LinearFlow, LinearFlow, UnorderedFlow, GraphFlow))
    n = counter[0]
    counter[0] += 1
    flow = kind(f"f{n}", retry=Times(2, name=f"r{n}") if depth and rng.random() < 0.3 else None)
    for _ in range(rng.randint(1, 6)):
        if depth < 2 and rng.random() < 0.3:
            flow.add(_flow(rng, log, counter, depth + 1))
        else:
            counter[0] += 1
            flow.add(_task(rng, log, f"t{counter[0]}"))
    return flow


def _run(seed: int, loud: bool) -> tuple[Any, ...]:
    """Build the flow of ``seed`` (with one more failing task at the end, so that it reverts) and run it
    on the serial engine: everything seen."""
    rng = random.Random(seed)
    log: Log = []
    flow = LinearFlow("top").add(_flow(rng, log, [0]), Step(log, fail=True, name="last"))
    engine = engines.load(flow, store={"x": 1})
    steps: list[str] = []
    raised = None
    try:
        if loud:
            steps.extend(str(step) for step in engine.run_iter())
        else:
            engine.run()
    except Exception as exc:
        raised = (type(exc).__name__, str(exc))
    st = engine.storage
    names = sorted(st.get_atom_states())
    atoms = [(n, st.get_atom_state(n), repr(st.get_revert_result(n))) for n in names]
    return log, atoms, steps, raised, st.get_flow_state(), current()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many atoms the revert waves started the general way (``RevertWave.start``)."""
    count = [0]
    start = RevertWave.start

    def counted(self: RevertWave, x: int) -> None:
        count[0] += 1
        start(self, x)

    monkeypatch.setattr(RevertWave, "start", counted)
    yield count


@pytest.mark.parametrize("loud", [False, True], ids=["run", "run_iter"])
def test_random_flows_revert_the_same_on_the_plain_route(
    loud: bool, starts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_starts = general_starts = 0
    for seed in range(150):
        starts[0] = 0
        plain = _run(seed, loud)
        plain_starts += starts[0]
        starts[0] = 0
        with monkeypatch.context() as m:
            m.setattr(Dispatcher, "plain_classes", lambda self: None)
            general = _run(seed, loud)
        general_starts += starts[0]
        assert plain == general, f"seed {seed}"
    # the comparison means something: most reverts took the plain route, some the general one
    assert general_starts > 500
    assert 0 < plain_starts < general_starts / 2


def test_a_plain_revert_gets_its_own_flow_failures_and_context(starts: list[int]) -> None:
    log: Log = []
    flow = LinearFlow("f").add(*(Step(log, name=f"t{i}") for i in range(3)), Step(log, fail=True, name="t3"))
    engine = engines.load(flow)
    with pytest.raises(Boom):
        engine.run()
    reverts = [entry for entry in log if entry[0] == "revert"]
    assert [r[1] for r in reverts] == ["t3", "t2", "t1", "t0"]
    assert [r[2]["result"] for r in reverts[1:]] == ["'out-t2'", "'out-t1'", "'out-t0'"]
    assert all(r[2]["flow_failures"] == ["t3"] for r in reverts)  # each its own copy, though each empties it
    assert all(r[3] == r[1] for r in reverts)  # the atom's own context during its revert
    assert current() is None
    assert starts[0] == 1  # only the failed task (its result is the failure) took the general route
    assert engine.storage.get_revert_result("t0") == "undone-t0"
    assert engine.storage.get_atom_state("t0") is AtomState.REVERTED


def test_the_plain_route_moves_states_the_table_allows() -> None:
    # the route sets SUCCESS -> REVERTING -> REVERTED without set_atom_state's check
    assert AtomState.REVERTING in ATOM_TRANSITIONS[AtomState.SUCCESS]
    assert AtomState.REVERTED in ATOM_TRANSITIONS[AtomState.REVERTING]


class Stopper(Step):
    """Suspends or cancels its engine from inside its revert (set ``engine`` before running)."""

    engine: Any = None
    how = "suspend"

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        if self.how == "suspend":
            self.engine.suspend()
        else:
            self.engine.cancel("stop")
        return super().revert(*args, **kwargs)


def _stopped(how: str) -> tuple[Any, ...]:
    log: Log = []
    stopper = Stopper(log, name="t2")
    stopper.how = how
    flow = LinearFlow("f").add(
        *(Step(log, name=f"t{i}") for i in range(2)),
        stopper,
        *(Step(log, name=f"t{i}") for i in range(3, 5)),
        Step(log, fail=True, name="t5"),
    )
    engine = stopper.engine = engines.load(flow)
    outcomes = []
    for _ in range(2):  # stopped mid-revert, then run again
        try:
            engine.run()
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        outcomes.append((engine.storage.get_flow_state(), dict(engine.storage.get_atom_states())))
    return [entry[:2] for entry in log], outcomes


@pytest.mark.parametrize("how", ["suspend", "cancel"])
def test_a_stop_between_plain_reverts_stops_where_the_general_route_does(
    how: str, starts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _stopped(how)
    assert starts[0] < 3  # the reverts before and after the stop took the plain route
    with monkeypatch.context() as m:
        m.setattr(Dispatcher, "plain_classes", lambda self: None)
        general = _stopped(how)
    assert plain == general
    log, outcomes = plain
    reverted = [name for kind, name in log if kind == "revert"]
    # a suspend stops the revert after t2 and the next run finishes it; a cancel does not stop a revert
    # (the second run starts the reverted flow afresh)
    assert reverted[:6] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert len(reverted) == (6 if how == "suspend" else 12)
    if how == "suspend":  # stopped between t2 and t1
        state, atoms = outcomes[0]
        assert state is FlowState.SUSPENDED
        assert (atoms["t2"], atoms["t1"]) == (AtomState.REVERTED, AtomState.SUCCESS)
    else:
        assert outcomes[0] == "Cancelled"
