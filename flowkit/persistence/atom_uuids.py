"""Atom details' uuids and version texts, as a flow detail's set-up makes them (one per atom).

An atom's uuid is derived from its flow detail's uuid and its name (:func:`atom_uuid`), so every process
that sets the flow up names its rows alike. Its first 48 bits are the flow's and the same for all of its
atoms, so a new flow's atom rows go into the uuid index side by side, not each on a page of its own: a
random key per row (uuid4, or uuid5 of the pair) made a 1,000-atom set-up on a SQLite file that had seen
many flows write several hundred index pages (4.5 ms of its commit, and the WAL growth to checkpoint),
and each transition afterwards look its row up on yet another page.
Atom details saved before keep the uuids they have: they are found by name on resume.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from hashlib import sha1

from flowkit.atom import version_text


def atom_uuid(flow_uuid: str, atom_name: str) -> str:
    """The uuid an atom gets in a flow detail: a version-8 UUID (RFC 9562's own layout), the same in
    every process.

    With ``f = SHA-1(OID + "flowkit/{flow_uuid}/")`` and ``a = SHA-1(OID + "flowkit/{flow_uuid}/{name}")``
    (``OID`` the bytes of ``uuid.NAMESPACE_OID``), in hex: ``f[0:8]-f[8:12]-8a[13:16]-Va[17:20]-a[20:32]``,
    ``V`` being ``a[16]`` with the variant bits (10) set. The flow's 48 bits first, then 74 of the
    atom's: see the module docstring.
    """
    return flow_atom_uuids(flow_uuid)(atom_name)


def flow_atom_uuids(flow_uuid: str) -> Callable[[str], str]:
    """:func:`atom_uuid` of ``flow_uuid`` for many names: the flow's prefix is hashed once, and its
    SHA-1 state copied for each name (a new hash object per name looks its algorithm up again in
    OpenSSL, which cost more than hashing the few bytes)."""
    base = sha1(OID + f"flowkit/{flow_uuid}/".encode())
    f = base.hexdigest()
    head = f"{f[:8]}-{f[8:12]}-8"

    def text(name: str) -> str:
        h = base.copy()
        h.update(name.encode())
        a = h.hexdigest()
        return f"{head}{a[13:16]}-{_VARIANT[a[16]]}{a[17:20]}-{a[20:32]}"

    return text


OID = uuidlib.NAMESPACE_OID.bytes
_VARIANT = {f"{k:x}": f"{(k & 0x3) | 0x8:x}" for k in range(16)}


def version_texts() -> Callable[[object], str | None]:
    """``version_text`` of an atom's ``version`` with the texts kept by version (one per class, as a
    rule): a new flow detail makes one per atom."""
    texts: dict[object, str | None] = {None: None}

    def text(version: object) -> str | None:
        try:
            found = texts.get(version, _NO_TEXT)
        except TypeError:  # unhashable (a list)
            return version_text(version)
        if found is _NO_TEXT:
            found = texts[version] = version_text(version)
        return found  # type: ignore[return-value]

    return text


_NO_TEXT = object()  # "not kept yet", apart from every text and None
