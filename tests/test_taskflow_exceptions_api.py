"""TaskFlow's exception surface on flowkit's errors: every TaskFlow name, ``cause``,
``missing_requirements``, and a cycle's message starting as TaskFlow's."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, engines, exceptions
from flowkit.exceptions import CycleError, FlowkitError, MissingRequirementError

TASKFLOW_NAMES = [
    "TaskFlowException", "StorageFailure", "ConductorFailure", "JobFailure", "UnclaimableJob",
    "ExecutionFailure", "RequestTimeout", "InvalidState", "DependencyFailure", "AmbiguousDependency",
    "MissingDependencies", "CompilationFailure", "IncompatibleVersion", "Duplicate", "NotFound",
    "Empty", "MultipleChoices", "InvalidFormat", "DisallowedAccess", "NotImplementedError",
    "WrappedFailure",
]  # fmt: skip


@pytest.mark.parametrize("name", TASKFLOW_NAMES)
def test_every_taskflow_exception_name_is_there(name: str) -> None:
    cls = getattr(exceptions, name)
    assert isinstance(cls, type) and issubclass(cls, Exception)


def test_taskflow_not_implemented_error_is_the_builtin_too() -> None:
    assert issubclass(exceptions.NotImplementedError, NotImplementedError)


def test_cause_is_the_raise_from_cause() -> None:
    try:
        try:
            raise OSError("disk")
        except OSError as exc:
            raise exceptions.StorageFailure("cannot save") from exc
    except FlowkitError as err:
        assert isinstance(err.cause, OSError)
    assert FlowkitError("alone").cause is None


class Needs(Task):
    def execute(self, a: Any, b: Any) -> None:
        pass


class NeedsC(Task):
    def execute(self, c: Any) -> None:
        pass


def test_every_missing_requirement_is_reported_through_cause() -> None:
    flow = LinearFlow("f").add(Needs("n1"), NeedsC("n2"))
    with pytest.raises(exceptions.MissingDependencies) as info:
        engines.load(flow).run()
    err = info.value
    assert (err.atom, err.symbol) == ("n1", "a")
    assert err.missing_requirements == ["a", "b", "c"]
    second = err.cause
    assert isinstance(second, MissingRequirementError)
    assert (second.atom, second.symbol) == ("n1", "b")
    third = second.cause
    assert isinstance(third, MissingRequirementError) and (third.atom, third.symbol) == ("n2", "c")
    assert third.cause is None


def test_a_single_missing_requirement_has_no_cause() -> None:
    with pytest.raises(MissingRequirementError) as info:
        engines.load(LinearFlow("f").add(NeedsC("n"))).run()
    assert info.value.cause is None and info.value.missing_requirements == ["c"]


class AtoB(Task):
    def execute(self, a: Any) -> Any:
        return a


def test_a_cycle_message_starts_as_taskflows_and_names_the_atoms() -> None:
    flow = GraphFlow("g").add(AtoB("x", provides="b"))
    with pytest.raises(CycleError) as info:
        flow.add(AtoB("y", provides="a", rebind=["b"]))
    assert str(info.value).startswith("No path through the items in the graph produces an ordering")
    assert "'x'" in str(info.value) and "'y'" in str(info.value)


def test_an_unknown_engine_is_taskflows_not_found_and_a_value_error() -> None:
    with pytest.raises(exceptions.NotFound) as info:
        engines.load(LinearFlow("f"), engine="not_really_any_engine")
    assert isinstance(info.value, ValueError) and "not_really_any_engine" in str(info.value)


def test_cause_keyword_is_kept_shown_by_str_and_survives_pickling() -> None:
    err = exceptions.TaskFlowException("broken", cause=OSError("dead"))
    assert isinstance(err.cause, OSError)
    assert str(err) == "broken\n  OSError: dead"
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy.cause, OSError) and str(copy.cause) == "dead"


def test_raise_with_cause_chains_the_exception_being_handled() -> None:
    with pytest.raises(exceptions.TaskFlowException) as info:
        try:
            try:
                raise OSError("Didn't work")
            except OSError:
                exceptions.raise_with_cause(exceptions.TaskFlowException, "It didn't go so well")
        except exceptions.TaskFlowException:
            exceptions.raise_with_cause(exceptions.StorageFailure, "I Failed")
    err = info.value
    assert isinstance(err, exceptions.StorageFailure)
    assert err.__cause__ is err.cause and isinstance(err.cause, FlowkitError)
    assert isinstance(err.cause.cause, OSError)
    text = err.pformat(show_root_class=True)
    assert text.splitlines() == [
        "StorageError: I Failed",
        "  FlowkitError: It didn't go so well",
        "    OSError: Didn't work",
    ]
    assert str(err) == err.pformat()


def test_pformat_refuses_a_negative_indent_and_stops_on_a_loop() -> None:
    with pytest.raises(ValueError):
        FlowkitError("x").pformat(indent=-1)
    first = FlowkitError("a")
    second = FlowkitError("b", cause=first)
    first._cause = second  # a loop
    assert first.pformat().splitlines() == ["a", "  FlowkitError: b"]


def test_raise_with_cause_needs_a_flowkit_error_class() -> None:
    with pytest.raises(ValueError):
        exceptions.raise_with_cause(KeyError, "no")  # type: ignore[arg-type]
