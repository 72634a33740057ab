"""TaskFlow's ``impl_memory.MemoryBackend(conf)``: flowkit's ``memory://`` backend built from a settings dict.

TaskFlow code makes its in-memory backend as ``MemoryBackend(conf={...})``; flowkit's own
:class:`~flowkit.persistence.backends.memory.MemoryBackend` takes a URL. This subclass accepts
TaskFlow's form and nothing else changes: same rows, same copies on read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.exceptions import InvalidFormat, UnknownBackendError
from flowkit.persistence.backends import memory

_KNOWN_KEYS = frozenset({"connection", "deep_copy"})
"""TaskFlow's settings for this backend; ``deep_copy`` is accepted and moot (reads are always copies)."""


class MemoryBackend(memory.MemoryBackend):
    """``memory://`` from ``conf`` (``{"connection": "memory://"}`` or ``{}`` or None)."""

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        conf = dict(conf or {})
        unknown = sorted(set(conf) - _KNOWN_KEYS)
        if unknown:
            raise InvalidFormat(f"memory backend: unknown settings {unknown}; known: {sorted(_KNOWN_KEYS)}")
        url = str(conf.get("connection") or "memory://")
        if not url.startswith("memory:"):
            raise UnknownBackendError(url, ["memory://"])
        super().__init__(url)
        self.conf = conf


__all__ = ["MemoryBackend"]
