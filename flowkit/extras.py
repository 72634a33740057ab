"""flowkit's optional dependencies, grouped as pip extras, and the check that names a missing one.

The in-memory engine needs none of them: ``pip install flowkit`` is enough to embed flowkit,
and SQLite (SQLAlchemy plus alembic, which creates the schema) is the persistent default.
Everything that talks to a server, or draws, comes with an extra, and the code that needs it
calls :func:`require` before importing it, so a missing extra is a
:class:`~flowkit.exceptions.MissingExtraError` that says what to install, not a bare
``ModuleNotFoundError`` from deep inside a backend.
"""

from __future__ import annotations

import importlib.util
import sys

from flowkit.exceptions import MissingExtraError

EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg2",),
    "zookeeper": ("kazoo",),
    "amqp": ("kombu",),
    "graph": ("networkx",),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "otel": ("opentelemetry",),
}
"""Extra name -> the top-level modules it installs (kept in step with pyproject.toml)."""


def require(extra: str, needed_for: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported.

    Looks the modules up without importing them, so calling it costs next to nothing and
    leaves the import (and its cost) to the code that uses the module.
    """
    for module in EXTRAS[extra]:
        if not _installed(module):
            raise MissingExtraError(extra, module, needed_for)


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already (or a stand-in put there), or None: blocked
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None
