"""The claims one SQL board holds: their lease tokens, their renewal, and what a failed renewal means.

A claim on the SQL board is a row naming its owner and a random token, valid until ``lease_expires``.
A heartbeat thread renews every lease this board holds each ``lease / 6`` seconds, each renewal bounded
to ``lease / 4`` (SQLite's busy timeout, PostgreSQL's ``statement_timeout``). A renewal that fails (the
database is unreachable) makes the claims ``IN_DOUBT`` at once. A watchdog thread judges the claims by
the time of the last good renewal, whatever the renewal call is doing (it may hang on a lock or a dead
connection): ``IN_DOUBT`` after ``lease / 3`` without one, leaving two thirds of a lease for the
claimant to reach a safe point; ``LOST`` after ``0.9 * lease`` (others may have them soon), and their
rows are put back when the database returns, in case nobody took them meanwhile. A renewal renews
only leases that have not run out, so a late one cannot bring back a claim already judged lost; one
that finds a row no longer ours (the lease ran out, maybe someone else claimed it) reports it ``LOST``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.base import ClaimEvent
from flowkit.states import JobState, job_sources

LOG = logging.getLogger("flowkit.jobboard")
T = schema.jobs
S = JobState

Transaction = Callable[[str], AbstractContextManager[sa.Connection]]
Emit = Callable[[ClaimEvent, frozenset[str]], None]

RENEW_EVERY = 1 / 6
"""Renew each lease every ``lease * RENEW_EVERY`` seconds."""
RENEWAL_BOUND = 1 / 4
"""Give up on one renewal after ``lease * RENEWAL_BOUND`` seconds (below ``DOUBT_AFTER``)."""
DOUBT_AFTER = 1 / 3
"""Claims are IN_DOUBT after ``lease * DOUBT_AFTER`` seconds without a good renewal."""
LOST_AFTER = 0.9
"""Claims are LOST after ``lease * LOST_AFTER`` seconds without a good renewal."""


def held_by(board: str, tokens: Collection[str]) -> sa.ColumnElement[bool]:
    """The rows of ``board`` claimed with one of ``tokens``. The board narrows it to the pick index's
    ``(board, state)``: a token alone, unindexed, had a renewal read every row of every board, the
    consumed jobs a board keeps as its history included (20,000 rows: 0.9 ms of the server's time per
    renewal of 10 leases, against 0.3 ms, which no longer grows with the history)."""
    return sa.and_(T.c.board == board, T.c.lease_token.in_(tokens))


def renewal(board: str, tokens: Collection[str], now: float, lease: float) -> sa.Update:
    """The UPDATE extending the leases of ``board``'s claims with ``tokens`` that have not run out to
    ``now + lease``, returning the uuids of the jobs renewed."""
    return (
        T.update()
        .where(
            held_by(board, tokens),
            T.c.state == S.CLAIMED,
            T.c.lease_expires > now,  # a lease that ran out stays out
        )
        .values(lease_expires=now + lease)
        .returning(T.c.uuid)
    )


def release(where: sa.ColumnElement[bool] | None) -> sa.Update:
    """An UPDATE that puts claimed rows back on the board (``where`` narrows it, when given)."""
    stmt = T.update().values(
        state=S.UNCLAIMED.value, owner=None, lease_token=None, lease_expires=None, updated_on=time.time()
    )
    if where is not None:
        stmt = stmt.where(where, T.c.state.in_([s.value for s in job_sources(S.UNCLAIMED)]))
    return stmt


class Leases:
    """Lease tokens by job uuid, renewed by a heartbeat thread and judged by a watchdog thread.

    See the module docstring.
    """

    def __init__(self, board: str, lease: float, tx: Transaction, emit: Emit) -> None:
        self.board, self.lease = board, lease
        self._tx, self._emit = tx, emit
        self._owned: dict[str, str] = {}  # job uuid -> lease token
        self._claimed_at: dict[str, float] = {}  # job uuid -> when claimed (monotonic)
        self._orphans: set[str] = set()  # tokens given up as lost, to release when the database is back
        self._lock = threading.Lock()  # guards the fields above and the two below
        self._in_doubt = False
        self._renewed_at = time.monotonic()  # when the last good renewal started
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        with self._lock:
            self._renewed_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._beat, name=f"flowkit-lease-{self.board}", daemon=True),
            threading.Thread(target=self._watch, name=f"flowkit-lease-watch-{self.board}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop renewing (the leases then run out, as when the process dies)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def take_all(self) -> set[str]:
        """Forget every token held and return them (for the board to release at once)."""
        with self._lock:
            tokens = set(self._owned.values()) | self._orphans
            self._owned.clear()
            self._claimed_at.clear()
            self._orphans.clear()
        return tokens

    def add(self, job_uuid: str, token: str) -> None:
        with self._lock:
            self._owned[job_uuid] = token
            self._claimed_at[job_uuid] = time.monotonic()

    def token(self, job_uuid: str) -> str | None:
        with self._lock:
            return self._owned.get(job_uuid)

    def held(self) -> set[str]:
        """The uuids of the jobs this board holds claims on now."""
        with self._lock:
            return set(self._owned)

    def drop(self, job_uuid: str) -> None:
        with self._lock:
            self._owned.pop(job_uuid, None)
            self._claimed_at.pop(job_uuid, None)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease * RENEW_EVERY):
            self.renew()

    def _watch(self) -> None:
        while not self._stop.wait(self.lease / 30):
            self.check()

    def renew(self) -> None:
        """Extend every lease held that has not run out; report claims found lost, and the end of a doubt."""
        started = time.monotonic()
        with self._lock:
            owned, orphans = dict(self._owned), set(self._orphans)
            if not owned and not orphans:
                self._renewed_at = started  # nothing held, nothing at risk
                return
        try:
            with self._tx("renew its leases") as conn, _bounded(conn, self.lease * RENEWAL_BOUND):
                if orphans:
                    conn.execute(release(held_by(self.board, orphans)))
                renewed = set()
                if owned:
                    stmt = renewal(self.board, owned.values(), time.time(), self.lease)
                    renewed = {row.uuid for row in conn.execute(stmt)}
        except Exception as exc:
            self._failed(owned, exc)
            return
        with self._lock:
            self._renewed_at = max(self._renewed_at, started)
            self._orphans -= orphans
            lost = {u for u, t in owned.items() if u not in renewed and self._owned.get(u) == t}
            for u in lost:
                self._forget(u)
            confirmed = self._in_doubt
            self._in_doubt = False
            renewed &= set(self._owned)
        if lost:
            self._emit(ClaimEvent.LOST, frozenset(lost))
        if confirmed:
            self._emit(ClaimEvent.CONFIRMED, frozenset(renewed))

    def check(self) -> None:
        """Judge the claims by the time since their last good renewal (or their claim, if later)."""
        now = time.monotonic()
        with self._lock:
            ages = {u: now - max(self._renewed_at, self._claimed_at.get(u, 0.0)) for u in self._owned}
            lost = {u for u, age in ages.items() if age >= self.lease * LOST_AFTER}
            for u in lost:
                self._forget(u)
            doubt = not self._in_doubt and any(age >= self.lease * DOUBT_AFTER for age in ages.values())
            if doubt:
                self._in_doubt = True
        if doubt and set(ages) - lost:
            LOG.warning(
                "board %r: no lease renewal for %.1fs; claims in doubt", self.board, max(ages.values())
            )
            self._emit(ClaimEvent.IN_DOUBT, frozenset(ages) - lost)
        if lost:
            LOG.warning("board %r: leases ran out without renewal; claims lost: %s", self.board, sorted(lost))
            self._emit(ClaimEvent.LOST, frozenset(lost))

    def _forget(self, job_uuid: str) -> None:
        """Give a claim up as lost (lock held): its row is released when the database answers."""
        self._orphans.add(self._owned.pop(job_uuid))
        self._claimed_at.pop(job_uuid, None)

    def _failed(self, owned: dict[str, str], exc: Exception) -> None:
        with self._lock:
            doubt = not self._in_doubt
            self._in_doubt = True
        if doubt:
            LOG.warning("board %r: cannot renew leases (%s); claims in doubt", self.board, exc)
            self._emit(ClaimEvent.IN_DOUBT, frozenset(owned))
        self.check()


@contextlib.contextmanager
def _bounded(conn: sa.Connection, seconds: float) -> Iterator[None]:
    """Make the statements of this transaction give up after ``seconds`` instead of waiting on locks."""
    ms = max(1, int(seconds * 1000))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")  # ends with the transaction
        yield
    elif conn.dialect.name == "sqlite":
        before = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {ms}")
        try:
            yield
        finally:  # the connection goes back to the pool: claims keep their own (longer) wait
            with contextlib.suppress(Exception):
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(before or 0)}")
    else:
        yield
