"""The jobs a ZooKeeper board holds: which claims this board made and still believes in.

Apart from the board because every move that ends a claim (consume, abandon, park, trash, set aside,
cancel) and the session's LOST (in kazoo's connection thread) change it, and all of them must do so
under one lock: a LOST that clears the record must never miss a claim being added, nor leave one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class HeldJobs:
    """Job uuid -> (node name, claimant, the job node's version its claim wrote), under one lock.

    The version is what consume's one-request path checks the job node against
    (``_zookeeper_moves.consume``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, str, int]] = {}

    def add_if(self, job_uuid: str, node: str, who: str, version: int, intact: Callable[[], bool]) -> bool:
        """Record the claim if ``intact()`` (asked under the lock) says its session still stands.

        Kazoo's thread marks the session suspended before it clears the record on LOST (under this
        lock): a LOST that came before is seen by ``intact``, one that comes after finds the job here.
        """
        with self._lock:
            if not intact():
                return False
            self._held[job_uuid] = (node, who, version)
            return True

    def drop(self, job_uuid: str) -> None:
        with self._lock:
            self._held.pop(job_uuid, None)

    def holds(self, job_uuid: str) -> bool:
        with self._lock:
            return job_uuid in self._held

    def as_claimed(self, job_uuid: str) -> tuple[str, int] | None:
        """(claimant, version its claim wrote) of a job held here, or None."""
        with self._lock:
            held = self._held.get(job_uuid)
        return None if held is None else (held[1], held[2])

    def uuid_of(self, node: str) -> str | None:
        """The uuid of the held job whose node is ``node``, or None."""
        with self._lock:
            return next((u for u, (n, _, _) in self._held.items() if n == node), None)

    def nodes(self) -> list[tuple[str, str]]:
        """(uuid, node name) of every held job."""
        with self._lock:
            return [(u, n) for u, (n, _, _) in self._held.items()]

    def uuids(self, clear: bool = False) -> frozenset[str]:
        """The held jobs' uuids; ``clear``: and forget them all in the same breath (LOST, close)."""
        with self._lock:
            held = frozenset(self._held)
            if clear:
                self._held.clear()
        return held
