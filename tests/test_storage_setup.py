"""What a fresh in-memory Storage hands out before anything runs: the atom uuids.

They are made cheaply (one random base per run, not one uuid4 per atom) but must keep what a
uuid4 per atom gave: well-formed, unique within the flow, different from another run's.
"""

from __future__ import annotations

import uuid

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import InvalidStateError
from flowkit.states import AtomState
from flowkit.storage import Storage


class Noop(Task):
    def execute(self) -> None:
        return None


def _flow(n: int) -> LinearFlow:
    return LinearFlow("f").add(*(Noop(name=f"t{i}") for i in range(n)))


def test_atom_uuids_are_well_formed_random_uuids() -> None:
    engine = engines.load(_flow(3))
    for name in ("t0", "t1", "t2"):
        text = engine.storage.get_atom_uuid(name)
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_atom_uuids_are_unique_within_a_flow() -> None:
    engine = engines.load(_flow(2000))
    uuids = [engine.storage.get_atom_uuid(f"t{i}") for i in range(2000)]
    assert len(set(uuids)) == 2000


def test_atom_uuids_differ_between_runs_of_the_same_flow() -> None:
    flow = _flow(50)
    first = engines.load(flow).storage
    second = engines.load(flow).storage
    assert not set(first.atom_uuids) & set(second.atom_uuids)
    assert first.flow_uuid != second.flow_uuid


def test_atom_uuids_do_not_repeat_across_many_storages() -> None:
    compiled = engines.load(_flow(20)).compilation
    seen: set[str] = set()
    for _ in range(200):
        uuids = Storage(compiled).atom_uuids
        assert not seen.intersection(uuids)
        seen.update(uuids)
    assert len(seen) == 200 * 20


def test_a_refused_atom_transition_names_the_atom_and_changes_nothing() -> None:
    storage = engines.load(_flow(3)).storage
    i = storage.compiled.index["t1"]
    with pytest.raises(InvalidStateError) as info:
        storage.set_atom_state(i, AtomState.SUCCESS)  # PENDING -> SUCCESS skips RUNNING
    assert (info.value.name, info.value.old, info.value.new) == ("t1", "PENDING", "SUCCESS")
    assert storage.states[i] is AtomState.PENDING
    assert storage.finished_seq[i] == 0
    assert storage.set_atom_state(i, AtomState.RUNNING) is AtomState.PENDING
    assert storage.states[i] is AtomState.RUNNING
