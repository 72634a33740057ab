"""The SQL board's watch over cancel requests on the jobs it holds: a poll of their rows.

A cancel is saved in the job row's ``cancel_reason`` (``board.cancel``, from any client). The board that
holds the claim reads that column for its held jobs every ``every`` seconds, and at once when woken: by
PostgreSQL's NOTIFY (a cancel notifies the board's channel, like a post) or by a cancel in this process.
A board that holds no job asks nothing. Each request is told to the cancel listeners once per claim.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.backends._sql_leases import Transaction
from flowkit.jobboard.cancels import Told
from flowkit.states import JobState, job_is_final

LOG = logging.getLogger("flowkit.jobboard")
T = schema.jobs


def request(board: str, job_uuid: str, reason: str) -> sa.Update:
    """Save ``reason`` on the job's row unless a reason is saved already, if the job is not over;
    returns the reason saved (none: no such row, or one that is over). A parked (WAITING) job becomes
    claimable at once: the conductor that claims it reverts its flow instead of waiting for its time."""
    open_states = sorted(s.value for s in JobState if not job_is_final(s))
    now = time.time()
    return (
        T.update()
        .where(T.c.board == board, T.c.uuid == job_uuid, T.c.state.in_(open_states))
        .values(
            cancel_reason=sa.func.coalesce(T.c.cancel_reason, reason),
            wake_at=sa.case((T.c.state == JobState.WAITING.value, now), else_=T.c.wake_at),
            updated_on=now,
        )
        .returning(T.c.cancel_reason)
    )


def mark_cancelled() -> sa.Update:
    """What ending a job CANCELLED writes (the claim's conditions are added by the board)."""
    return T.update().values(
        state=JobState.CANCELLED.value,
        lease_token=None,
        lease_expires=None,
        last_reason=sa.func.coalesce(T.c.cancel_reason, T.c.last_reason),
        updated_on=time.time(),
    )


class CancelPoll:
    """One thread reading the cancel requests of the jobs ``held()`` returns; see the module docstring."""

    def __init__(
        self,
        board: str,
        every: float,
        tx: Transaction,
        held: Callable[[], set[str]],
        emit: Callable[[str, str], None],
        changed: threading.Condition,
    ) -> None:
        self.board, self.every = board, every
        self._tx, self._held, self._emit, self._changed = tx, held, emit, changed
        self.told = Told()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"flowkit-cancels-{self.board}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # the database is away: the leases report that; try again later
                LOG.debug("board %r: reading cancel requests failed: %s", self.board, exc)
            with self._changed:
                if not self._stop.is_set():
                    self._changed.wait(self.every)

    def check(self) -> None:
        """Tell the listeners of every held job with a cancel request not told yet."""
        held = self._held()
        self.told.keep_only(held)
        if not held:
            return
        query = sa.select(T.c.uuid, T.c.cancel_reason).where(
            T.c.board == self.board, T.c.uuid.in_(sorted(held)), T.c.cancel_reason.is_not(None)
        )
        with self._tx("read cancel requests") as conn:
            rows = conn.execute(query).all()
        for job_uuid, reason in rows:
            if job_uuid in held and self.told.first(job_uuid):
                self._emit(job_uuid, reason)
