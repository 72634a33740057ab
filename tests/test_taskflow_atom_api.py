"""An atom's declaration read as TaskFlow reads it: ``save_as``, ``rebind`` listing optional
parameters, ``requires`` making an optional parameter required, ``optional`` and
``revert_optional`` kept apart, and the error types and messages of bad declarations."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import InvalidFlowError, MissingRequirementError


class Three(Task):
    def execute(self, context: Any, spam: Any, eggs: Any) -> None:
        pass


class WithDefault(Task):
    def execute(self, spam: Any, eggs: Any = ()) -> Any:
        return (spam, eggs)


class RevertOptional(Task):
    def execute(self, execute_arg: Any = None) -> None:
        pass

    def revert(self, result: Any, flow_failures: Any, revert_arg: Any = None) -> None:
        pass


def test_save_as_maps_a_whole_result_to_none_and_positions_to_indexes() -> None:
    assert Three(provides="food").save_as == {"food": None}
    assert Three(provides=("food", "water")).save_as == {"food": 0, "water": 1}
    assert Three(provides={"k"}).save_as == {"k": "k"}


def test_a_whole_result_is_still_provided_by_an_engine() -> None:
    class Five(Task):
        def execute(self) -> int:
            return 5

    engine = engines.load(LinearFlow("f").add(Five(provides="five"), WithDefault(rebind=["five"])))
    engine.run()
    assert engine.storage.fetch("five") == 5


@pytest.mark.parametrize("provides", [object(), 5, {"a": 1}])
def test_provides_of_a_wrong_type_is_a_type_error_named_as_taskflow(provides: Any) -> None:
    with pytest.raises(TypeError, match=r"^Atom provides") as info:
        Three(name="t", provides=provides)
    assert isinstance(info.value, InvalidFlowError) and "'t'" in str(info.value)


def test_rebind_of_a_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^Invalid rebind value"):
        Three(rebind=object())  # type: ignore[arg-type]


def test_rebind_naming_an_argument_execute_lacks_is_extra_arguments() -> None:
    with pytest.raises(ValueError, match=r"^Extra arguments given to atom 't'.*'foo'"):
        Three(name="t", rebind={"foo": "bar"})
    with pytest.raises(ValueError, match=r"^Extra arguments"):
        Three(rebind=("a", "b", "c", "d"))


def test_rebind_lists_optional_parameters_after_the_required_ones() -> None:
    task = WithDefault()
    assert task.rebind == {"spam": "spam", "eggs": "eggs"}
    assert list(task.rebind) == ["spam", "eggs"]
    assert task.requires == {"spam"} and task.optional == {"eggs"}


def test_requires_makes_an_optional_parameter_required() -> None:
    task = WithDefault(requires=("spam", "eggs"))
    assert task.requires == {"spam", "eggs"}
    assert task.optional == frozenset()
    engine = engines.load(LinearFlow("f").add(task), store={"spam": 1})
    with pytest.raises(MissingRequirementError, match="eggs"):  # now needed, and nothing gives it
        engine.run()


def test_optional_and_revert_optional_are_kept_apart() -> None:
    task = RevertOptional()
    assert task.optional == {"execute_arg"}
    assert task.revert_optional == {"revert_arg"}
    assert task.revert_rebind == {"revert_arg": "revert_arg"}


def test_str_and_repr_show_the_name_and_version_as_taskflow() -> None:
    task = Three(name="my")
    assert str(task) == '"my==1.0"'
    assert repr(task) == f'<{__name__}.Three "my==1.0">'
    task.version = (2, 1)
    assert str(task) == '"my==2.1"'
