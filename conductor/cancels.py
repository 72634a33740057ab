"""What a conductor does with cancel requests: keep those heard before a job's run exists, and tell a
cancelled flow from one that ended on its own.

Apart from the loop because the board's thread (which hears a request) and the job's thread (which
loads the engine) meet here: a request may arrive while ``claim_next`` is still returning the job, before
the loop has registered its run, and must not be lost.
"""

from __future__ import annotations

import threading

from flowkit.engines.cancel import CANCEL_KEY
from flowkit.storage import Storage


class Heard:
    """Cancel requests for jobs whose run is not registered yet (job uuid -> reason)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def keep(self, job_uuid: str, reason: str) -> None:
        with self._lock:
            self._reasons.setdefault(job_uuid, reason)

    def take(self, job_uuid: str) -> str | None:
        with self._lock:
            return self._reasons.pop(job_uuid, None)


def was_cancelled(storage: Storage) -> bool:
    """Whether the finished flow ended because of a cancel (its saved failures hold the cancel's).

    A flow that finished SUCCESS before the cancel reached it was not: its job is consumed as usual.
    """
    return CANCEL_KEY in storage.flow_failures
