"""TaskFlow's module path for the worker-based engine: ``from flowkit.engines.worker_based import worker``.

flowkit keeps them in :mod:`flowkit.workers`; ``worker`` here is :mod:`flowkit.workers.worker` (whose
``Worker`` takes a broker URL as ``transport``). It is looked up by name on first use, as the engine
kinds are (:mod:`flowkit.engines.kinds`), so the engines package never imports the workers package
(docs/architecture.md); using it imports kombu (``flowkit[amqp]``).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    if name == "worker":
        return importlib.import_module("flowkit.workers.worker")
    raise AttributeError(f"module 'flowkit.engines.worker_based' has no attribute {name!r}")
