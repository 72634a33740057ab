"""Backends shared by everything in one process that names them by URL, and their schema made current once.

An engine (``engines.load(backend=URL)``), a job board posting flows and a conductor all reach
persistence by URL. Fetching a URL builds a backend with its own connection pool, so each URL is
fetched once per process and the one backend is shared; and upgrading the schema is idempotent but
not free (a migrations check per call), so :func:`ensure_schema` does it once per backend.
"""

from __future__ import annotations

import threading
import weakref

from flowkit.persistence.backends import Backend, fetch

__all__ = ["backend_for", "ensure_schema"]

_BACKENDS: dict[str, Backend] = {}
_UPGRADED: weakref.WeakSet[Backend] = weakref.WeakSet()
_LOCK = threading.Lock()


def backend_for(backend: Backend | str) -> Backend:
    """A backend object; URLs are fetched once per process, so their connection pools are shared."""
    if isinstance(backend, Backend):
        return backend
    with _LOCK:
        found = _BACKENDS.get(backend)
        if found is None:
            found = _BACKENDS[backend] = fetch(backend)
        return found


def ensure_schema(backend: Backend | str) -> Backend:
    """``backend`` (a URL fetched as by :func:`backend_for`) with its schema upgraded, once per process."""
    found = backend_for(backend)
    if found not in _UPGRADED:
        with found.get_connection() as conn:
            conn.upgrade()
        _UPGRADED.add(found)
    return found
