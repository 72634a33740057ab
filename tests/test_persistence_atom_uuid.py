"""The uuid of an atom detail is derived from its flow detail's uuid and its name: the same in every
process (two that set the same flow up name its rows alike), a valid RFC 9562 version-8 UUID, and the
flow's 48 bits first so that a flow's rows sit together in the uuid index."""

from __future__ import annotations

import uuid
from hashlib import sha1
from pathlib import Path

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.persistence import backends
from flowkit.persistence.atom_uuids import atom_uuid, flow_atom_uuids
from flowkit.persistence.models import FlowDetail, LogBook, TaskDetail

NAMES = ["t0", "", "a/b c", "é☃\U0001f600", "x" * 300]


def _spelled_out(flow: str, name: str) -> str:
    """The layout as atom_uuid's docstring gives it, computed the long way."""
    oid = uuid.NAMESPACE_OID.bytes
    f = sha1(oid + f"flowkit/{flow}/".encode()).digest()
    a = sha1(oid + f"flowkit/{flow}/{name}".encode()).digest()
    raw = bytearray(f[:6] + a[6:16])
    raw[6] = 0x80 | (raw[6] & 0x0F)  # version 8
    raw[8] = 0x80 | (raw[8] & 0x3F)  # variant 10
    return str(uuid.UUID(bytes=bytes(raw)))


@pytest.mark.parametrize("name", NAMES)
def test_atom_uuid_is_the_documented_version_8_layout(name: str) -> None:
    flow = str(uuid.uuid4())
    made = atom_uuid(flow, name)
    assert made == _spelled_out(flow, name)
    parsed = uuid.UUID(made)
    assert parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert str(parsed) == made  # canonical: lower case, 8-4-4-4-12


def test_a_flows_atoms_share_its_48_bits_and_differ_in_the_rest() -> None:
    flow, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine = [atom_uuid(flow, f"t{k}") for k in range(1000)]
    assert len(set(mine)) == 1000
    assert {u[:13] for u in mine} == {mine[0][:13]}  # 8-4 hex digits: 48 bits, the flow's
    assert atom_uuid(other, "t0")[:13] != mine[0][:13]
    assert atom_uuid(other, "t0") != mine[0]


@pytest.mark.parametrize("name", NAMES)
def test_a_flows_atom_uuids_from_one_hashed_prefix_are_atom_uuid(name: str) -> None:
    """The set-up hashes the flow's prefix once and copies that hash per atom: the same uuids."""
    flow = str(uuid.uuid4())
    uuid_of = flow_atom_uuids(flow)
    assert uuid_of(name) == atom_uuid(flow, name)
    assert uuid_of("other") == atom_uuid(flow, "other")  # the copied prefix is left as it was


class Noop(Task):
    def execute(self) -> None:
        pass


def test_a_saved_flows_atoms_get_them_and_a_resume_keeps_older_ones(tmp_path: Path) -> None:
    """A new atom detail's row carries atom_uuid's; one saved with another uuid (an older flowkit's
    uuid5) keeps it when the flow is loaded again, and a new atom beside it gets the new kind."""
    backend = backends.fetch(f"sqlite:///{tmp_path}/atoms.db")
    try:
        with backend.get_connection() as conn:
            conn.upgrade()
            book, fd = LogBook("b"), FlowDetail("f", uuid=str(uuid.uuid4()))
            book.add(fd)
            old = str(uuid.uuid5(uuid.NAMESPACE_OID, f"flowkit/{fd.uuid}/a"))
            fd.add(TaskDetail("a", old))
            conn.save_logbook(book)
        flow = LinearFlow("f").add(Noop(name="a"), Noop(name="b"))
        engine = engines.load(flow, backend=backend, book=book, flow_detail=fd)
        engine.run()
        assert engine.storage.get_atom_uuid("a") == old
        assert engine.storage.get_atom_uuid("b") == atom_uuid(fd.uuid, "b")
        with backend.get_connection() as conn:
            saved = {ad.name: ad.uuid for ad in conn.get_flow_detail(fd.uuid)}
        assert saved == {"a": old, "b": atom_uuid(fd.uuid, "b")}
    finally:
        backend.close()
