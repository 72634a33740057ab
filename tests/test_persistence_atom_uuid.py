"""The uuid of an atom detail is derived from its flow detail's and its name: the same in every process
and every version of flowkit (resume finds atoms by it), so it must stay TaskFlow-compatible uuid5."""

from __future__ import annotations

import uuid

import pytest

from flowkit.persistence.atom_uuids import atom_uuid


@pytest.mark.parametrize("name", ["t0", "", "a/b c", "é☃\U0001f600", "x" * 300])
def test_atom_uuid_is_uuid5_of_flow_and_name(name: str) -> None:
    flow = str(uuid.uuid4())
    expected = str(uuid.uuid5(uuid.NAMESPACE_OID, f"flowkit/{flow}/{name}"))
    assert atom_uuid(flow, name) == expected
    assert uuid.UUID(atom_uuid(flow, name)).version == 5


@pytest.mark.parametrize("name", ["t0", "", "a/b c", "é☃\U0001f600", "x" * 300])
def test_a_flows_atom_uuids_from_one_hashed_prefix_are_atom_uuid(name: str) -> None:
    """The set-up hashes the flow's prefix once and copies that hash per atom: the same uuids."""
    from flowkit.persistence.atom_uuids import OID, uuid5_texts

    flow = str(uuid.uuid4())
    uuid_of = uuid5_texts(OID + f"flowkit/{flow}/".encode())
    assert uuid_of(name) == atom_uuid(flow, name)
    assert uuid_of("other") == atom_uuid(flow, "other")  # the copied prefix is left as it was
