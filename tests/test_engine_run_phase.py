"""What the cheaper run phase must keep: each revert sees the flow's failures without being able to
change what the flow saved, and an atom's revert runs in the same context (stable id) as its execute."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.context import current_atom_uuid
from flowkit.states import EngineState, FlowState


class Boom(Exception):
    pass


class Meddler(Task):
    """Its revert empties the flow_failures it is given (a badly behaved task)."""

    def execute(self) -> None:
        return None

    def revert(self, flow_failures: dict[str, Any], **kwargs: Any) -> None:
        seen.append(sorted(flow_failures))
        flow_failures.clear()


class Fails(Task):
    def execute(self) -> None:
        raise Boom("planned")


class Ids(Task):
    def execute(self) -> None:
        ids.append(("execute", current_atom_uuid()))

    def revert(self, **kwargs: Any) -> None:
        ids.append(("revert", current_atom_uuid()))


seen: list[list[str]] = []
ids: list[tuple[str, str | None]] = []


def test_a_revert_that_changes_flow_failures_does_not_change_what_the_flow_saved() -> None:
    seen.clear()
    engine = engines.load(LinearFlow("f").add(Meddler(name="a"), Meddler(name="b"), Fails(name="c")))
    with pytest.raises(Boom):
        engine.run()
    assert seen == [["c"], ["c"]]  # the second revert still sees the failure the first one cleared
    assert sorted(engine.storage.flow_failures) == ["c"]
    assert engine.storage.get_atom_state("a").name == "REVERTED"


def test_revert_runs_with_the_same_atom_id_as_execute() -> None:
    ids.clear()
    engine = engines.load(LinearFlow("f").add(Ids(name="a"), Fails(name="b")))
    with pytest.raises(Boom):
        engine.run()
    (a1, u1), (a2, u2) = ids
    assert (a1, a2) == ("execute", "revert")
    assert u1 is not None and u1 == u2


def test_run_iter_still_yields_a_round_per_atom_while_run_does_not_need_them() -> None:
    flow = LinearFlow("f").add(*(Ids(name=f"t{i}") for i in range(3)))
    steps = list(engines.load(flow).run_iter())
    assert steps[-1] is FlowState.SUCCESS
    assert steps.count(EngineState.SCHEDULING) == 3
    assert steps.count(EngineState.ANALYZING) == 3
    engine = engines.load(LinearFlow("g").add(*(Ids(name=f"t{i}") for i in range(3))))
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
