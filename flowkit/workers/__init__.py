"""Remote workers: the worker-based engine sends each atom's execute or revert to a worker over RabbitMQ.

Start workers with ``flowkit-worker`` (:mod:`flowkit.workers.cli`), then run a flow with
``engines.load(flow, engine="worker-based", transport=URL, exchange=..., topics=[...])``.
The wire format is described in :mod:`flowkit.workers.protocol`, the broker entities in
:mod:`flowkit.workers.topology`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.workers.dispatcher import WorkerDispatcher
    from flowkit.workers.engine import load
    from flowkit.workers.options import WorkerOptions
    from flowkit.workers.tasks import resolve_tasks
    from flowkit.workers.worker import Worker

__all__ = ["Worker", "WorkerDispatcher", "WorkerOptions", "load", "resolve_tasks"]

# Imported on first use, so ``flowkit-worker`` can say which extra is missing before kombu is imported.
_HOMES = {
    "Worker": "flowkit.workers.worker",
    "WorkerDispatcher": "flowkit.workers.dispatcher",
    "WorkerOptions": "flowkit.workers.options",
    "load": "flowkit.workers.engine",
    "resolve_tasks": "flowkit.workers.tasks",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'flowkit.workers' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
