"""TaskFlow's module path for the worker-based engine: ``from flowkit.engines.worker_based import worker``.

flowkit keeps them in :mod:`flowkit.workers`; ``worker`` here is :mod:`flowkit.workers.worker` (whose
``Worker`` takes a broker URL as ``transport``). Importing this module imports kombu (``flowkit[amqp]``).
"""

from __future__ import annotations

from flowkit.workers import worker

__all__ = ["worker"]
