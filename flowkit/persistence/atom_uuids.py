"""Atom details' uuids and version texts, as a flow detail's set-up makes them (one per atom).

An atom's uuid is derived from its flow detail's uuid and its name (:func:`atom_uuid`), so every process
that restores the flow names its rows alike. A new flow detail makes one per atom, which is why the
uuid5 is computed here without the ``UUID`` object and the SHA-1 of the shared prefix is taken once.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from hashlib import sha1

from flowkit.atom import version_text


def atom_uuid(flow_uuid: str, atom_name: str) -> str:
    """The uuid an atom gets in a flow detail: derived from both, so it is the same in every process.

    ``str(uuid.uuid5(uuid.NAMESPACE_OID, f"flowkit/{flow_uuid}/{atom_name}"))``, computed without the
    ``UUID`` object (a new flow detail makes one per atom): see :func:`_uuid5_text`.
    """
    return _uuid5_text(OID + f"flowkit/{flow_uuid}/{atom_name}".encode())


def _uuid5_text(name: bytes) -> str:
    """``str(uuid.uuid5(...))`` of a namespace's bytes + ``name`` already joined: the SHA-1 in hex, its
    first 32 digits with the version digit (5) and the RFC 4122 variant bits (the 17th digit's top two
    bits 10) set, in the 8-4-4-4-12 layout."""
    h = sha1(name).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def uuid5_texts(prefix: bytes) -> Callable[[str], str]:
    """:func:`_uuid5_text` of ``prefix`` + a name, for many names: the SHA-1 of the prefix is taken
    once and copied for each name (a new hash object per name looks its algorithm up again in
    OpenSSL, which cost more than hashing the few bytes)."""
    base = sha1(prefix)

    def text(name: str) -> str:
        h = base.copy()
        h.update(name.encode())
        d = h.hexdigest()
        return f"{d[:8]}-{d[8:12]}-5{d[13:16]}-{_VARIANT[d[16]]}{d[17:20]}-{d[20:32]}"

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
