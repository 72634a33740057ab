"""Flow details that name their factory as TaskFlow records it (a dotted name), and factories that
cannot be recorded: the errors TaskFlow programs catch."""

from __future__ import annotations

import pytest

from flowkit import engines
from flowkit.exceptions import InvalidFlowError
from flowkit.persistence.models import FlowDetail


def _detail(name: str, **extra: object) -> FlowDetail:
    fd = FlowDetail("f")
    fd.meta = {"factory": {"name": name, **extra}}
    return fd


def test_a_dotted_factory_name_is_read_as_module_and_function():
    flow = engines.flow_from_detail(_detail("tests.example_flows.wide", args=[3]))
    assert flow.name == "wide" and [len(list(part)) for part in flow] == [3, 3]


@pytest.mark.parametrize("name", ["no spaces allowed in here", "nosuchmodule_xyz.factory"])
def test_a_factory_that_cannot_be_imported_is_an_import_error(name):
    with pytest.raises(ImportError, match=r"^Could not import factory") as caught:
        engines.flow_from_detail(_detail(name))
    assert isinstance(caught.value, InvalidFlowError)


def test_a_factory_another_process_could_not_import_is_not_reimportable():
    def nested():  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(ValueError, match=r"^Flow factory '.*nested' is not reimportable"):
        engines.load_from_factory(nested)
