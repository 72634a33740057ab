"""``engines.load`` returns TaskFlow's engine class names per kind (its printing listeners and users'
logs name them), each still a flowkit :class:`~flowkit.engines.engine.Engine`."""

from __future__ import annotations

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.engines.engine import Engine


class Noop(Task):
    def execute(self) -> None:
        return None


@pytest.mark.parametrize(
    ("kind", "name"), [("serial", "SerialActionEngine"), ("parallel", "ParallelActionEngine")]
)
def test_each_kind_has_taskflow_class_path(kind: str, name: str) -> None:
    engine = engines.load(LinearFlow("f").add(Noop("n")), engine=kind)
    cls = type(engine)
    assert f"{cls.__module__}.{cls.__qualname__}" == f"flowkit.engines.action_engine.engine.{name}"
    assert isinstance(engine, Engine)
    engine.run()
    assert engine.storage.get_atom_state("n").value == "SUCCESS"


def test_the_classes_import_from_taskflow_module_path() -> None:
    from flowkit.engines.action_engine.engine import (
        ActionEngine,
        ParallelActionEngine,
        SerialActionEngine,
    )

    assert issubclass(SerialActionEngine, ActionEngine)
    assert issubclass(ParallelActionEngine, ActionEngine)
    assert issubclass(ActionEngine, Engine)
