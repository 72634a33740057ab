"""``flowkit.tests.utils``: the test helpers TaskFlow programs import from ``taskflow.tests.utils``."""

from __future__ import annotations

import pytest

from flowkit import UnorderedFlow, engines
from flowkit.exceptions import WrappedFailure
from flowkit.failure import Failure
from flowkit.task import FunctorTask
from flowkit.tests import utils


def _boom(message: str) -> None:
    raise ValueError(message)


def test_one_failure_comes_out_wrapped() -> None:
    flow = UnorderedFlow("f").add(FunctorTask(lambda: _boom("one"), name="a"))
    with pytest.raises(WrappedFailure) as caught, utils.wrap_all_failures():
        engines.run(flow)
    failures = list(caught.value)
    assert len(failures) == 1 and failures[0].check(ValueError) and failures[0].exception_str == "one"


def test_several_failures_stay_one_wrapped_failure_not_nested() -> None:
    inner = WrappedFailure([Failure.from_exception(ValueError("x")), Failure.from_exception(KeyError("y"))])
    with pytest.raises(WrappedFailure) as caught, utils.wrap_all_failures():
        raise inner
    assert caught.value is inner


def test_nothing_happens_without_an_exception() -> None:
    with utils.wrap_all_failures():
        value = 1
    assert value == 1


def test_the_sample_tasks_return_one_and_a_sum() -> None:
    flow = UnorderedFlow("f").add(
        utils.TaskOneArgOneReturn(provides="one"), utils.TaskMultiArgOneReturn(provides="sum")
    )
    result = engines.run(flow, store={"x": 1, "y": 20, "z": 300})
    assert (result["one"], result["sum"]) == (1, 321)
