"""The uuid of an atom detail is derived from its flow detail's and its name: the same in every process
and every version of flowkit (resume finds atoms by it), so it must stay TaskFlow-compatible uuid5."""

from __future__ import annotations

import uuid

import pytest

from flowkit.persistence.recorder import atom_uuid


@pytest.mark.parametrize("name", ["t0", "", "a/b c", "é☃\U0001f600", "x" * 300])
def test_atom_uuid_is_uuid5_of_flow_and_name(name: str) -> None:
    flow = str(uuid.uuid4())
    expected = str(uuid.uuid5(uuid.NAMESPACE_OID, f"flowkit/{flow}/{name}"))
    assert atom_uuid(flow, name) == expected
    assert uuid.UUID(atom_uuid(flow, name)).version == 5
