"""Small flows for the listener, CLI and docs tests, importable as ``tests.example_flows:<name>``."""

from __future__ import annotations

import time
from typing import Any

from flowkit import FunctorTask, GraphFlow, LinearFlow, Task, UnorderedFlow, retry
from flowkit.flow import Flow


class Step(Task):
    """Returns its name after a short sleep, reporting progress half way."""

    def execute(self, pause: float = 0.0) -> str:
        self.update_progress(0.5)
        if pause:
            time.sleep(pause)
        return self.name

    def revert(self, result: Any, **kwargs: Any) -> None:
        return None


class Explode(Task):
    """Always fails with ``ValueError("boom in <name>")``."""

    def execute(self) -> None:
        raise ValueError(f"boom in {self.name}")


class BadRevert(Task):
    """Succeeds, but its revert raises."""

    def execute(self) -> str:
        return "made"

    def revert(self, **kwargs: Any) -> None:
        raise OSError("cannot undo")


def linear() -> Flow:
    """Three steps one after another; succeeds."""
    return LinearFlow("three-steps").add(
        Step("step-a", provides="a"), Step("step-b", provides="b"), Step("step-c", provides="c")
    )


def failing() -> Flow:
    """Two steps, then a task that fails: reverted."""
    return LinearFlow("doomed").add(
        Step("prepare", provides="p"), Step("build", provides="b"), Explode("explode")
    )


def revert_fails() -> Flow:
    """A failure whose revert fails too: flow ends FAILURE."""
    return LinearFlow("stuck").add(BadRevert("make-thing"), Explode("explode"))


def wide(width: int = 5) -> Flow:
    """Two unordered groups in sequence; width * width > 16 makes the compiler add a junction."""
    return LinearFlow("wide").add(
        UnorderedFlow("left").add(*(Step(f"left-{i}", provides=f"l{i}") for i in range(width))),
        UnorderedFlow("right").add(*(Step(f"right-{i}", provides=f"r{i}") for i in range(width))),
    )


def with_retry() -> Flow:
    """A retried subflow (diamond in graphs) that fails twice, then succeeds."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"flaky attempt {len(calls)}")
        return "stable"

    return LinearFlow("retried", retry=retry.Times(attempts=3, name="three-times")).add(
        Step("before", provides="before"), FunctorTask(flaky, name="flaky", provides="outcome")
    )


def is_big(history: dict[str, Any]) -> bool:
    return bool(history["measure"] > 10)


def with_decider() -> Flow:
    """A graph flow whose link measure -> grow carries a decider (false: grow is IGNOREd)."""
    measure = FunctorTask(lambda: 5, name="measure", provides="size")
    grow = FunctorTask(lambda size: size * 2, name="grow", provides="grown")
    flow = GraphFlow("maybe-grow").add(measure, grow)
    flow.link(measure, grow, decider=is_big, decider_depth="ATOM")
    return flow


def needs_input() -> Flow:
    """Requires ``size`` from the store."""
    return LinearFlow("sized").add(FunctorTask(lambda size: size * 2, name="double", provides="doubled"))


class Chatty(Task):
    """Reports progress 20 times."""

    def execute(self) -> None:
        for i in range(1, 21):
            self.update_progress(i / 20)


def many_progress(count: int = 8) -> Flow:
    """Unordered tasks that report progress many times (from worker threads on a parallel engine)."""
    return UnorderedFlow("chatty").add(*(Chatty(f"chatty-{i}") for i in range(count)))


FLOW_OBJECT = linear()
"""A flow, not a factory: the CLI accepts it too."""

SINGLE_TASK = Step("lonely", provides="alone")
"""A single task: run as a one-atom linear flow."""

NOT_A_FLOW = 42


def returns_number() -> int:
    return 42


def raises_in_factory() -> Flow:
    raise RuntimeError("factory exploded")
