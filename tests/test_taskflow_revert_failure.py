"""A revert that fails: ``run()`` raises one flat WrappedFailure whose first failure is the revert's
own exception (as TaskFlow), and which still holds the failure that caused the revert."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import WrappedFailure


class Nasty(Task):
    def execute(self) -> None:
        pass

    def revert(self, **kwargs: Any) -> None:
        raise RuntimeError("Gotcha!")


class Failing(Task):
    def execute(self) -> None:
        raise RuntimeError("Woot!")


@pytest.mark.parametrize("engine", ["serial", "parallel"])
@pytest.mark.parametrize(
    "flow",
    [
        lambda: LinearFlow("l").add(Nasty("nasty"), Failing("fail")),
        lambda: LinearFlow("l").add(UnorderedFlow("u").add(Nasty("nasty")), Failing("fail")),
        lambda: UnorderedFlow("u").add(LinearFlow("l").add(Nasty("nasty"), Failing("fail"))),
    ],
)
def test_the_failed_revert_comes_first_and_the_cause_is_kept(engine: str, flow: Any) -> None:
    with pytest.raises(WrappedFailure) as info:
        engines.load(flow(), engine=engine).run()
    failures = list(info.value)
    assert [(f.atom_name, f.exception_str) for f in failures] == [("nasty", "Gotcha!"), ("fail", "Woot!")]
    first = next(f for f in info.value if f.check(RuntimeError))
    assert first.exception_str == "Gotcha!"
    assert "WrappedFailure: [" in str(info.value) and "1 failures" not in str(info.value)


def test_storage_lists_execute_and_revert_failures_by_atom() -> None:
    engine = engines.load(LinearFlow("l").add(Nasty("nasty"), Failing("fail")))
    with pytest.raises(WrappedFailure):
        engine.run()
    assert [(n, f.exception_str) for n, f in engine.storage.get_execute_failures().items()] == [
        ("fail", "Woot!")
    ]
    assert [(n, f.exception_str) for n, f in engine.storage.get_revert_failures().items()] == [
        ("nasty", "Gotcha!")
    ]
    revert_result = engine.storage.get_revert_result("nasty")
    assert revert_result is not None and revert_result.check(RuntimeError)
