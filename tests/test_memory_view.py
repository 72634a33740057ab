"""An in-memory run's ``storage.backend.memory``: TaskFlow's memory-backend tree, built from storage."""

from __future__ import annotations

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import NotFound
from flowkit.patterns import graph_flow


class Step(Task):
    def execute(self) -> str:
        return self.name.upper()


def _loaded() -> engines.Engine:
    engine = engines.load(LinearFlow("root").add(Step("a"), Step("b")))
    engine.prepare()
    return engine


def test_the_tree_before_a_run_links_each_atom_under_its_flow() -> None:
    engine = _loaded()
    st = engine.storage
    f, a, b = st.flow_uuid, st.atom_uuids[0], st.atom_uuids[1]
    assert engine.storage.backend.memory.pformat() == "\n".join(
        [
            "/",
            "|__books",
            "|__flow_details",
            f"|  |__{f}",
            f"|     |__{a} (link to /atom_details/{a})",
            f"|     |__{b} (link to /atom_details/{b})",
            "|__atom_details",
            f"   |__{a}",
            f"   |__{b}",
        ]
    )


def test_values_show_the_run_as_it_is_now() -> None:
    engine = _loaded()
    backend = engine.storage.backend
    a = engine.storage.atom_uuids[0]
    assert backend.memory[f"/atom_details/{a}"]["atom"]["state"] == "PENDING"
    assert backend.memory[f"/atom_details/{a}"]["atom"]["meta"] == {}
    engine.run()
    memory = backend.memory
    value = memory[f"/atom_details/{a}"]
    assert value == {
        "atom": {
            "failure": None,
            "revert_failure": None,
            "meta": {"progress": 1.0},
            "name": "a",
            "results": "A",
            "revert_results": None,
            "state": "SUCCESS",
            "version": "1.0",
            "intention": "EXECUTE",
            "uuid": a,
        },
        "type": "TASK_DETAIL",
    }
    flow_path = f"/flow_details/{engine.storage.flow_uuid}"
    assert memory[f"{flow_path}/{a}"] == value
    assert memory[flow_path] == {
        "name": "root",
        "meta": {},
        "state": "SUCCESS",
        "uuid": engine.storage.flow_uuid,
    }
    assert memory["/books"] is None
    assert set(memory.ls_r("/", absolute=True)) == {
        "/books",
        "/flow_details",
        flow_path,
        f"{flow_path}/{a}",
        f"{flow_path}/{engine.storage.atom_uuids[1]}",
        "/atom_details",
        f"/atom_details/{a}",
        f"/atom_details/{engine.storage.atom_uuids[1]}",
    }
    assert memory.ls_r("/flow_details") == [
        engine.storage.flow_uuid,
        f"{engine.storage.flow_uuid}/{a}",
        f"{engine.storage.flow_uuid}/{engine.storage.atom_uuids[1]}",
    ]


def test_an_ignored_atom_shows_ignore_intention_and_no_progress() -> None:
    flow = graph_flow.Flow("g")
    first, second = Step("first"), Step("second")
    flow.add(first, second)
    flow.link(first, second, decider=lambda history: False)
    engine = engines.load(flow)
    engine.run()
    uuid = engine.storage.atom_uuids[engine.compile().index["second"]]
    atom = engine.storage.backend.memory[f"/atom_details/{uuid}"]["atom"]
    assert (atom["state"], atom["intention"], atom["meta"]) == ("IGNORE", "IGNORE", {"progress": 0.0})


def test_an_unknown_path_is_not_found() -> None:
    with pytest.raises(NotFound, match="/nope"):
        _ = _loaded().storage.backend.memory["/nope"]
