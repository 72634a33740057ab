"""The claims one SQL board holds: their lease tokens, their renewal, and what a failed renewal means.

A claim on the SQL board is a row naming its owner and a random token, valid until ``lease_expires``.
A heartbeat thread renews every lease this board holds each ``lease / 3`` seconds. A renewal that fails
(the database is unreachable) makes the claims ``IN_DOUBT`` at once, leaving at least two thirds of a
lease for the claimant to reach a safe point; once a whole lease has passed since the last good
renewal, the claims are ``LOST`` (others may have them now), and their rows are put back when the
database returns, in case nobody took them meanwhile. A renewal that finds a row no longer ours (a
lease ran out and someone else claimed it) reports that claim ``LOST``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.base import ClaimEvent
from flowkit.states import JobState, job_sources

LOG = logging.getLogger("flowkit.jobboard")
T = schema.jobs
S = JobState

Transaction = Callable[[str], AbstractContextManager[sa.Connection]]
Emit = Callable[[ClaimEvent, frozenset[str]], None]


def release(where: Any) -> Any:
    """An UPDATE that puts claimed rows back on the board (``where`` narrows it, when given)."""
    stmt = T.update().values(
        state=S.UNCLAIMED.value, owner=None, lease_token=None, lease_expires=None, updated_on=time.time()
    )
    if where is not None:
        stmt = stmt.where(where, T.c.state.in_([s.value for s in job_sources(S.UNCLAIMED)]))
    return stmt


class Leases:
    """Lease tokens by job uuid, renewed by a heartbeat thread; see the module docstring."""

    def __init__(self, board: str, lease: float, tx: Transaction, emit: Emit) -> None:
        self.board, self.lease = board, lease
        self._tx, self._emit = tx, emit
        self._owned: dict[str, str] = {}  # job uuid -> lease token
        self._orphans: set[str] = set()  # tokens given up as lost, to release when the database is back
        self._lock = threading.Lock()
        self._in_doubt = False
        self._renewed_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name=f"flowkit-lease-{self.board}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the leases then run out, as when the process dies)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def take_all(self) -> set[str]:
        """Forget every token held and return them (for the board to release at once)."""
        with self._lock:
            tokens = set(self._owned.values()) | self._orphans
            self._owned.clear()
            self._orphans.clear()
        return tokens

    def add(self, job_uuid: str, token: str) -> None:
        with self._lock:
            self._owned[job_uuid] = token

    def token(self, job_uuid: str) -> str | None:
        with self._lock:
            return self._owned.get(job_uuid)

    def drop(self, job_uuid: str) -> None:
        with self._lock:
            self._owned.pop(job_uuid, None)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            self.renew()

    def renew(self) -> None:
        """Extend every lease held; report claims found lost, and the end of a doubt."""
        with self._lock:
            owned, orphans = dict(self._owned), set(self._orphans)
        now = time.time()
        if not owned and not orphans:
            self._renewed_at = time.monotonic()  # nothing held, nothing at risk
            return
        try:
            with self._tx("renew its leases") as conn:
                if orphans:
                    conn.execute(release(T.c.lease_token.in_(orphans)))
                renewed = set()
                if owned:
                    stmt = (
                        T.update()
                        .where(T.c.lease_token.in_(owned.values()), T.c.state == S.CLAIMED)
                        .values(lease_expires=now + self.lease)
                        .returning(T.c.uuid)
                    )
                    renewed = {row.uuid for row in conn.execute(stmt)}
        except Exception as exc:
            self._failed(owned, exc)
            return
        self._renewed_at = time.monotonic()
        with self._lock:
            self._orphans -= orphans
            lost = {u for u, t in owned.items() if u not in renewed and self._owned.get(u) == t}
            for u in lost:
                del self._owned[u]
        if lost:
            self._emit(ClaimEvent.LOST, frozenset(lost))
        if self._in_doubt:
            self._in_doubt = False
            self._emit(ClaimEvent.CONFIRMED, frozenset(renewed))

    def _failed(self, owned: dict[str, str], exc: Exception) -> None:
        if not self._in_doubt:
            self._in_doubt = True
            LOG.warning("board %r: cannot renew leases (%s); claims in doubt", self.board, exc)
            self._emit(ClaimEvent.IN_DOUBT, frozenset(owned))
        if time.monotonic() - self._renewed_at < self.lease * 0.9:
            return
        with self._lock:
            lost = {u for u, t in owned.items() if self._owned.get(u) == t}
            for u in lost:
                self._orphans.add(self._owned.pop(u))
        if lost:
            self._emit(ClaimEvent.LOST, frozenset(lost))
