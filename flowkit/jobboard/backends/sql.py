"""The job board in an SQL database: SQLite for one machine, PostgreSQL for a team that already runs it.

A claim is a lease: the row names its owner and a token, and holds until ``lease_expires``; it also
raises the row's ``claim_epoch``, the claim's fencing token (``job.fence``; see
``_sql_claims.next_epoch``, which also builds the other conditions of a claim). The board renews its
leases from a heartbeat thread every ``lease / 3`` seconds (``_sql_leases``); a conductor that dies
stops renewing, and once its lease has run out any other conductor may claim the job.
Claiming the next job is one statement: PostgreSQL picks the row with ``FOR UPDATE SKIP LOCKED``,
so conductors never queue behind each other; SQLite serialises writers anyway.

Claim events mirror ZooKeeper's session: a failed renewal tells claimants ``IN_DOUBT`` (the database is
unreachable; start nothing new), a later successful one ``CONFIRMED``, and a lease that ran out or was
taken over ``LOST``. Waiting is woken by PostgreSQL's LISTEN/NOTIFY, by posts in this process, and
otherwise by a short poll (``poll`` seconds; SQLite has no notifications between processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl

import sqlalchemy as sa

from flowkit.exceptions import (
    JobBoardConnectionError,
    JobBoardError,
    JobSetAsideError,
    MalformedJobError,
    NotFound,
    NotOwnerError,
    StorageError,
    UnclaimableJobError,
)
from flowkit.jobboard.backends import _sql_cancels as cancels
from flowkit.jobboard.backends import _sql_claims as claims
from flowkit.jobboard.backends import _sql_fleet
from flowkit.jobboard.backends import _sql_operator as operator
from flowkit.jobboard.backends import _sql_parking as parked
from flowkit.jobboard.backends import _sql_prepared as prepared
from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.backends._sql_cancels import CancelPoll
from flowkit.jobboard.backends._sql_leases import Leases, held_by, release
from flowkit.jobboard.base import DEFAULT_MAX_ATTEMPTS, JobBoard
from flowkit.jobboard.cancels import refuse
from flowkit.jobboard.fleet import Member
from flowkit.jobboard.job import Job
from flowkit.jobboard.listing import JobEntry
from flowkit.sql import engines, urls
from flowkit.sql.engines import EngineLease
from flowkit.sql.urls import Database
from flowkit.states import JobState, check_job_transition

if TYPE_CHECKING:
    from flowkit.persistence.backends.base import Backend
    from flowkit.persistence.models import LogBook

LOG = logging.getLogger("flowkit.jobboard")
_S = TypeVar("_S")
T = schema.jobs
S = JobState
ACTIVE = (S.UNCLAIMED.value, S.CLAIMED.value, S.WAITING.value)
MEMORY = "memory://"
"""``memory://NAME``: the in-process SQLite database NAME (boards in this process only; tests, demos)."""
DEFAULT_LEASE = 10.0
DEFAULT_CANCEL_POLL = (0.25, 1.0)
"""Seconds between reads of the held jobs' cancel requests: SQLite, PostgreSQL (where NOTIFY wakes it)."""


@dataclasses.dataclass(frozen=True)
class SQLBoardOptions:
    """What a SQL board URL says: the database, and the board's options from its query."""

    database: Database
    lease: float | None = None
    poll: float | None = None
    max_attempts: int | None = None
    history: float | None = None

    QUERY: ClassVar[tuple[str, ...]] = ("lease", "poll", "max_attempts", "history")

    @classmethod
    def from_url(cls, url: str) -> SQLBoardOptions:
        """Parse ``url`` (``memory://NAME`` too); a URL the board cannot use raises JobBoardError."""
        bad = urls.complaint(url, JobBoardError, "job board")
        if url.lower().startswith(MEMORY):
            name, _, text = url[len(MEMORY) :].partition("?")
            query = dict(parse_qsl(text, keep_blank_values=True))
            unknown = sorted(set(query) - set(cls.QUERY))
            if unknown:
                raise bad(f"unknown option {unknown[0]!r}")
            database = urls.memory(name)
        else:
            database, query = urls.parse(url, cls.QUERY, JobBoardError, "job board")
        return cls(
            database,
            lease=urls.number(query, "lease", float, bad),
            poll=urls.number(query, "poll", float, bad),
            max_attempts=urls.number(query, "max_attempts", int, bad),
            history=urls.number(query, "history", float, bad, zero=True),
        )


class SQLJobBoard(JobBoard):
    """A job board in one table of an SQL database; see the module docstring."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        lease: float | None = None,
        poll: float | None = None,
        persistence: Backend | str | None = None,
        max_attempts: int | None = None,
        cancel_poll: float | None = None,
    ) -> None:
        """``lease``: seconds a claim outlives its claimant's last renewal (the failover time).
        ``cancel_poll``: seconds between two reads of the held jobs' cancel requests (SQLite 0.25,
        PostgreSQL 1.0, where NOTIFY wakes the read at once).

        Arguments win over the URL's query (``?lease=``, ``?poll=``, ``?max_attempts=``).
        """
        options = SQLBoardOptions.from_url(url)
        if max_attempts is None:
            max_attempts = options.max_attempts or DEFAULT_MAX_ATTEMPTS
        super().__init__(name, persistence=persistence, max_attempts=max_attempts)
        self.url = url
        self.database = options.database
        self.lease = lease if lease is not None else (options.lease or DEFAULT_LEASE)
        default_poll = 1.0 if self.database.dialect == "postgresql" else 0.05
        self.poll = poll if poll is not None else (options.poll or default_poll)
        self.history = operator.DEFAULT_HISTORY if options.history is None else options.history
        self._purged = 0.0
        """Seconds a consumed job stays listed (``?history=``; 0: deleted when consumed)."""
        self._engine: sa.Engine | None = None
        self._engine_lease: EngineLease | None = None
        self._guard: AbstractContextManager[object] = contextlib.nullcontext()
        self._leases = Leases(name, self.lease, self._tx, self._emit)
        self._listener: schema.Listener | None = None
        self._changed = threading.Condition()
        self._generation = 0
        self._bad: set[int] = set()
        self._statements: dict[str, object] = {}
        self._prepared = False
        """Whether claim and consume go prepared through the driver (PostgreSQL on psycopg2)."""
        self._kept: prepared.Kept | None = None
        if cancel_poll is None:
            cancel_poll = DEFAULT_CANCEL_POLL[self.database.dialect == "postgresql"]
        self.cancel_poll = cancel_poll
        """Seconds between two reads of the held jobs' cancel requests."""
        self._cancels = CancelPoll(
            name, cancel_poll, self._tx, self._leases.held, self._emit_cancel, self._changed
        )

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> sa.Engine | None:
        """The SQLAlchemy engine while connected: the same one as persistence's on the same database."""
        return self._engine

    def connect(self) -> None:
        if self._engine is not None:
            return
        from flowkit.persistence import migrations

        held = engines.acquire(self.database)
        try:
            with held.lock:
                migrations.ensure(held.engine)
        except (sa.exc.DBAPIError, StorageError) as exc:
            held.release()
            raise JobBoardConnectionError(
                f"board {self.name!r}: cannot use database {self._where()}"
            ) from exc
        except BaseException:
            held.release()
            raise
        self._engine_lease, self._engine, self._guard = held, held.engine, held.lock
        dialect = held.engine.dialect
        self._prepared = dialect.name == "postgresql" and dialect.driver == "psycopg2"
        self._kept = prepared.Kept(held.engine) if self._prepared else None
        self._leases.start()
        self._cancels.start()
        if held.engine.dialect.name == "postgresql":
            self._listener = schema.Listener(held.engine, self.name, self._wake)
            self._listener.start()

    def close(self) -> None:
        if self._engine is None:
            return
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=5)
            self._listener = None
        self._cancels.stop()
        self._leases.stop()
        tokens = self._leases.take_all()
        if tokens:  # like a ZooKeeper session ending: the claims go at once (the attempts stay counted)
            with contextlib.suppress(JobBoardConnectionError), self._tx("release its claims") as conn:
                conn.execute(release(held_by(self.name, tokens)))
        if self._kept is not None:
            self._kept.close()
            self._kept = None
        if self._engine_lease is not None:
            self._engine_lease.release()  # disposed unless persistence (or another board) shares it
        self._engine, self._engine_lease = None, None
        self._wake()

    def _where(self) -> str:
        return self.database.display

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[sa.Connection]:
        """One transaction; database trouble becomes :class:`JobBoardConnectionError`."""
        if self._engine is None:
            raise JobBoardConnectionError(f"board {self.name!r} is not connected (call connect())")
        with self._trouble(what), self._guard, self._engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _autocommit(self, what: str) -> Iterator[tuple[sa.Connection, Any]]:
        """A connection and its driver's cursor for one :class:`~._sql_prepared.Prepared` statement (its
        own transaction); database trouble becomes :class:`JobBoardConnectionError`, as in :meth:`_tx`."""
        if self._kept is None:
            raise JobBoardConnectionError(f"board {self.name!r} is not connected (call connect())")
        with self._trouble(what), self._guard, self._kept.cursor() as pair:
            yield pair

    @contextlib.contextmanager
    def _trouble(self, what: str) -> Iterator[None]:
        """A database failure while trying to do ``what``, as :class:`JobBoardConnectionError`."""
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise JobBoardConnectionError(
                f"board {self.name!r}: database {self._where()} failed while trying to {what}: {exc.orig}"
            ) from exc

    def _wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _notify(self, conn: sa.Connection) -> None:
        """Wake every waiting board: in this process at once, elsewhere through NOTIFY (PostgreSQL)."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(schema.notify(self.name)))

    # -- rows and jobs ------------------------------------------------------------------------------

    def _job(self, row: sa.Row[Any]) -> Job | None:
        try:
            job = Job.from_bytes(self, row.record.encode(), row.id)
        except MalformedJobError as exc:
            if row.id not in self._bad:
                self._bad.add(row.id)
                LOG.warning("board %r: skipping %s row id=%s: %s", self.name, T.name, row.id, exc)
            return None
        job.priority, job.attempts, job.last_reason = row.priority, row.attempts, row.last_reason
        job.cancel_reason = row.cancel_reason
        return job

    def _active(self) -> sa.ColumnElement[bool]:
        return sa.and_(T.c.board == self.name, T.c.state.in_(ACTIVE))

    def _claim_values(self, who: str, token: str, now: float) -> dict[str, object]:
        return claims.claim_values(who, token, now, self.lease, self.database.dialect)

    # -- posting and reading ------------------------------------------------------------------------

    def _post(self, job: Job) -> None:
        self._post_in(job, None)

    def _post_with_logbook(self, job: Job, book: LogBook, persistence: Backend) -> bool:
        save = getattr(persistence, "save_logbook_in", None)  # SQLAlchemy persistence only
        if save is None or self._engine is None or getattr(persistence, "engine", None) is not self._engine:
            return False
        return self._post_in(job, lambda conn: bool(save(conn, book)))

    def _post_in(self, job: Job, before: Callable[[sa.Connection], bool] | None) -> bool:
        """Insert the job's row, after ``before`` (in the same transaction) when given; False, nothing
        written, when ``before`` says it could not do its part."""
        values = {
            "uuid": job.uuid,
            "name": job.name,
            "priority": job.priority,
            "created_on": job.created_on,
            "updated_on": time.time(),
            "record": job.to_bytes().decode(),
        }
        notifies = self.database.dialect == "postgresql"
        stmt = self._statement("post", lambda: _post_statement(self.name, notifies))
        with self._tx(f"post job {job}") as conn:
            if before is not None and not before(conn):
                return False
            result = conn.execute(stmt, values)
            if notifies:  # the NOTIFY went with the INSERT (its RETURNING), not a round trip of its own
                job.sequence = int(result.one()[0])
            else:
                key = result.inserted_primary_key
                assert key is not None
                job.sequence = int(key[0])
        self._wake()
        return True

    def _select(self, where: sa.ColumnElement[bool]) -> list[Job]:
        query = sa.select(T).where(where).order_by(*claims.CLAIM_ORDER)
        with self._tx("list the jobs") as conn:
            rows = conn.execute(query).all()
        return [job for job in map(self._job, rows) if job is not None]

    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> Iterator[Job]:
        now = time.time()
        return iter(self._select(claims.available(self.name, now) if only_unclaimed else self._active()))

    def wait(self, timeout: float | None = None) -> Iterator[Job]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                generation = self._generation
            jobs = list(self.iterjobs(only_unclaimed=True))
            if jobs:
                return iter(jobs)
            remaining = self.poll if deadline is None else min(self.poll, deadline - time.monotonic())
            wake = self.next_wake()  # a parked job due before the next poll: wake up for it
            if wake is not None and remaining > 0:
                remaining = min(remaining, max(0.001, wake - time.time()))
            if remaining <= 0:
                return iter(())
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(remaining)

    def wait_claimable(self, timeout: float | None = None) -> None:
        """Like :meth:`wait`, but once woken (a post here, NOTIFY) it returns at once, without reading
        the jobs: the caller claims next, and that reads them. The board is read before sleeping
        (a post may have come since the caller last looked) and after each quiet ``poll``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                generation = self._generation
            if self.job_count(only_unclaimed=True):
                return
            remaining = self.poll if deadline is None else min(self.poll, deadline - time.monotonic())
            wake = self.next_wake()  # a parked job due before the next poll: wake up for it
            if wake is not None and remaining > 0:
                remaining = min(remaining, max(0.001, wake - time.time()))
            if remaining <= 0:
                return
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(remaining)
                if self._generation != generation:
                    return

    def job_count(self, only_unclaimed: bool = False) -> int:
        now = time.time()
        where = claims.available(self.name, now) if only_unclaimed else self._active()
        with self._tx("count the jobs") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(T).where(where)).scalar_one())

    def _row(self, job: Job, what: str) -> sa.Row[Any] | None:
        with self._tx(what) as conn:
            return conn.execute(sa.select(T).where(T.c.board == self.name, T.c.uuid == job.uuid)).first()

    def state_of(self, job: Job) -> JobState:
        row = self._row(job, f"read the state of job {job}")
        if row is None:
            return S.COMPLETE
        if row.state == S.CLAIMED and row.lease_expires < time.time():
            return S.UNCLAIMED
        return S(row.state)

    def find_owner(self, job: Job) -> str | None:
        row = self._row(job, f"find the owner of job {job}")
        if row is None or row.state != S.CLAIMED or row.lease_expires < time.time():
            return None
        return str(row.owner)

    def set_aside_jobs(self) -> list[Job]:
        return self._select(sa.and_(T.c.board == self.name, T.c.state == S.SET_ASIDE))

    def listing(self, *, finished: bool = True) -> list[JobEntry]:
        return operator.listing(self, finished)

    def finished_jobs(self) -> list[JobEntry]:
        return operator.finished_jobs(self)

    def page(
        self,
        states: Collection[JobState] | None = None,
        owner: str | None = None,
        *,
        finished: bool = True,
        limit: int = 500,
        offset: int = 0,
    ) -> tuple[int, list[JobEntry]]:
        return operator.page(self, states, owner, finished, limit, offset)

    def requeue(self, job: Job | str) -> Job:
        return operator.requeue(self, job)

    def find_job(self, prefix: str) -> Job:
        return operator.find(self, prefix)

    def describe(self, job: Job) -> JobEntry:
        return operator.describe(self, job)

    def trash_job(self, job: Job | str, reason: str | None = None) -> None:
        operator.trash(self, job, reason)

    def announce(self, member: Member) -> None:
        _sql_fleet.announce(self, member)

    def fleet(self) -> list[Member]:
        return _sql_fleet.members(self)

    def purge_history(self, older_than: float | None = None) -> int:
        with self._tx("purge the consumed jobs") as conn:
            return operator.purge(self, conn, self.history if older_than is None else older_than, time.time())

    def get_job(self, job_uuid: str) -> Job:
        jobs = self._select(sa.and_(T.c.board == self.name, T.c.uuid == job_uuid))
        if not jobs:
            raise NotFound(f"no job {job_uuid!r} on board {self.name!r} (consumed, or never posted)")
        return jobs[0]

    # -- claims -------------------------------------------------------------------------------------

    def _claim(self, job: Job, who: str, describe: bool = True) -> int:
        now, token = time.time(), str(uuidlib.uuid4())
        stmt = (
            T.update()
            .where(T.c.id == job.sequence, claims.available(self.name, now))
            .values(**self._claim_values(who, token, now))
            .returning(T.c.attempts, T.c.last_reason, T.c.claim_epoch)
        )
        with self._tx(f"claim job {job}") as conn:
            row = conn.execute(stmt).first()
        if row is None:
            if not describe:
                raise UnclaimableJobError(f"job {job} was claimed by another claimant, or is gone")
            holder = self.find_owner(job)
            if holder is not None:
                raise UnclaimableJobError(f"job {job} is already claimed by {holder!r}")
            raise UnclaimableJobError(f"job {job} is no longer on board {self.name!r}")
        self._leases.add(job.uuid, token)
        job.attempts, job.last_reason, job.fence = row.attempts, row.last_reason, int(row.claim_epoch)
        return int(row.attempts) - 1

    def claim_next(self, who: str) -> Job | None:
        while True:
            now, token = time.time(), str(uuidlib.uuid4())
            row = self._claim_row(claims.claim_params(who, token, now, self.lease))
            if row is None:
                return None
            job = self._job(row)
            self._leases.add(row.uuid, token)
            if job is not None:
                job.fence = int(row.claim_epoch)
            if job is None:
                stub = Job(board=self, uuid=row.uuid, name=row.name, sequence=row.id)
                self.set_aside(stub, who, "malformed job record")
                continue
            try:
                self._check_attempts(job, who, int(row.attempts) - 1)
            except JobSetAsideError as exc:
                LOG.warning("board %r: %s", self.name, exc)
                continue
            return job

    def _claim_row(self, params: dict[str, object]) -> Any:
        """The row ``claim_next``'s one statement claimed (None: nothing to claim)."""
        stmt = self._statement(
            "claim_next", lambda: claims.claim_next_statement(self.name, self.database.dialect)
        )
        if self._prepared:  # one round trip, committed durably: the claim's fencing token is handed out
            ready = self._statement("claim_next_prepared", lambda: prepared.Prepared(stmt, list(params)))
            with self._autocommit("claim the next job") as (conn, cursor):
                return prepared.first_row(ready.run(conn, cursor, params))
        with self._tx("claim the next job") as conn:
            return conn.execute(stmt, params).first()

    def _statement(self, key: str, build: Callable[[], _S]) -> _S:
        """The board's statement ``key``, built on first use: a statement object used again is not
        built nor keyed for SQLAlchemy's compiled cache again (the hot path's statements)."""
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt  # type: ignore[return-value]

    def _change(
        self,
        job: Job,
        who: str,
        target: JobState,
        stmt: sa.Update | sa.Delete | prepared.Prepared,
        what: str,
        params: dict[str, object] | None = None,
        relaxed: bool = False,
    ) -> None:
        """Apply ``stmt`` to the job's row if ``who`` holds the claim and the row is in a state that
        may move to ``target`` (:func:`~flowkit.states.job_sources`): one conditional statement.
        With ``params``, ``stmt`` is a prebuilt :func:`~._sql_claims.owned_statement` instead, or
        that statement :class:`~._sql_prepared.Prepared` (relaxed or not as it was prepared).
        ``relaxed``: a change whose loss in a database crash is harmless (PostgreSQL then commits it
        without waiting for the disk; see :meth:`consume`)."""
        if isinstance(stmt, prepared.Prepared):
            assert params is not None and target is not S.UNCLAIMED  # (no NOTIFY sent from there)
            with self._autocommit(f"{what} job {job}") as (conn, cursor):
                owned = {"seq": job.sequence, "who": who, "token": self._leases.token(job.uuid)}
                done = stmt.run(conn, cursor, {**params, **owned}).rowcount == 1
            self._changed_or_refused(job, who, target, what, done)
            return
        with self._tx(f"{what} job {job}") as conn:
            if relaxed and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(engines.RELAXED_TRANSACTION)
            token = self._leases.token(job.uuid)
            if params is not None:
                owned = {"seq": job.sequence, "who": who, "token": token}
                done = conn.execute(stmt, {**params, **owned}).rowcount == 1
            else:
                where = claims.owned_by(self.name, job.sequence, who, token, target)
                done = conn.execute(stmt.where(where)).rowcount == 1
            if done and target is S.UNCLAIMED:
                self._notify(conn)
        self._changed_or_refused(job, who, target, what, done)

    def _changed_or_refused(self, job: Job, who: str, target: JobState, what: str, done: bool) -> None:
        """After :meth:`_change`'s statement: the claim is over if it was applied; else why not, raised."""
        if not done:
            row = self._row(job, f"{what} job {job}")
            token = self._leases.token(job.uuid)
            if row is not None and token is not None and (row.owner, row.lease_token) == (who, token):
                check_job_transition(job.uuid, S(row.state), target)  # ours: the state was the reason
            holder = self.find_owner(job)
            raise NotOwnerError(f"job {job} is claimed by {holder!r} (here or elsewhere), not by {who!r}")
        self._leases.drop(job.uuid)
        self._cancels.told.forget(job.uuid)
        if target is S.UNCLAIMED:
            self._wake()

    def consume(self, job: Job, who: str) -> None:
        """Relaxed on PostgreSQL: a consume lost in a server crash leaves the job claimed by a lease
        nobody renews; once it runs out, the next claimant finds the flow finished (saved durably
        before this is called) and consumes the job again. So the claim-to-claim loop waits for one
        disk flush less per job."""
        stmt = self._statement(
            "consume",
            lambda: claims.owned_statement(
                self.name, S.COMPLETE, operator.consumed_values(sa.bindparam("now", type_=sa.Float))
            ),
        )
        params: dict[str, object] = {"now": time.time()}
        if self._prepared:  # one round trip: SET LOCAL and the UPDATE in one message
            ready = self._statement(
                "consume_prepared",
                lambda: prepared.Prepared(stmt, ["now", "seq", "who", "token"], relaxed=True),
            )
            self._change(job, who, S.COMPLETE, ready, "consume", params)
        else:
            self._change(job, who, S.COMPLETE, stmt, "consume", params, relaxed=True)
        if self.history == 0 or time.monotonic() - self._purged > operator.PURGE_EVERY:
            self._purged = time.monotonic()
            with contextlib.suppress(JobBoardConnectionError):  # consumed anyway; the next one purges
                self.purge_history()

    def abandon(self, job: Job, who: str, reason: str | None = None, *, count: bool = True) -> None:
        stmt = release(None)
        values: dict[str, object] = {"last_reason": sa.func.coalesce(reason, T.c.last_reason)}
        if not count:
            values["attempts"] = sa.case((T.c.attempts > 0, T.c.attempts - 1), else_=0)
        self._change(job, who, S.UNCLAIMED, stmt.values(**values), "abandon")
        job.last_reason = reason or job.last_reason

    def trash(self, job: Job, who: str, reason: str | None = None) -> None:
        self._move(job, who, S.TRASHED, reason, "trash")

    def set_aside(self, job: Job, who: str, reason: str) -> None:
        self._move(job, who, S.SET_ASIDE, reason, "set aside")

    # -- parked jobs (flowkit.jobboard.parking; the statements are _sql_parking's) ------------------------

    def _park(self, job: Job, who: str, wake_at: float | None, events: Sequence[str]) -> None:
        self._change(job, who, S.WAITING, parked.park(wake_at, events), "park")

    def _wake_waiting(self, names: Sequence[str]) -> int:
        with self._tx(f"wake the jobs waiting for {', '.join(names)}") as conn:
            woken = int(conn.execute(parked.wake(self.name, names, time.time())).rowcount)
            if woken:
                self._notify(conn)
        if woken:
            self._wake()
        return woken

    def next_wake(self) -> float | None:
        """The earliest wake-up time of a parked job on this board (None: none is parked with one)."""
        with self._tx("find the next wake-up time") as conn:
            found = conn.execute(parked.next_wake(self.name)).scalar()
        return None if found is None else float(found)

    def _move(self, job: Job, who: str, target: JobState, reason: str | None, what: str) -> None:
        stmt = T.update().values(
            state=target.value,
            lease_token=None,
            lease_expires=None,
            last_reason=sa.func.coalesce(reason, T.c.last_reason),
            updated_on=time.time(),
        )
        self._change(job, who, target, stmt, what)
        job.last_reason = reason or job.last_reason

    # -- cancelling ---------------------------------------------------------------------------------

    def _request_cancel(self, job: Job, reason: str) -> None:
        with self._tx(f"cancel job {job}") as conn:
            saved = conn.execute(cancels.request(self.name, job.uuid, reason)).scalar()
            if saved is not None:
                self._notify(conn)  # wakes the holder's cancel poll on PostgreSQL at once
        if saved is None:
            row = self._row(job, f"cancel job {job}")
            if row is None:
                raise NotFound(f"no job {job.uuid!r} on board {self.name!r} (consumed, or never posted)")
            raise refuse(job, S(row.state))
        job.cancel_reason = saved
        self._wake()

    def cancel_requested(self, job: Job) -> str | None:
        row = self._row(job, f"read the cancel request of job {job}")
        return None if row is None else row.cancel_reason

    def mark_cancelled(self, job: Job, who: str) -> None:
        self._change(job, who, S.CANCELLED, cancels.mark_cancelled(), "mark cancelled")

    def cancelled_jobs(self) -> list[Job]:
        """The jobs that ended CANCELLED, with their reasons in ``cancel_reason``."""
        return self._select(sa.and_(T.c.board == self.name, T.c.state == S.CANCELLED))


def _post_statement(board: str, notify: bool) -> sa.Insert:
    """A new job's ``INSERT`` (its values bound by name at each post). ``notify`` (PostgreSQL): its
    ``RETURNING`` also calls ``pg_notify``, delivered at commit as a ``NOTIFY`` statement's would be,
    so the waiting boards are woken without a round trip of the post's own for it (a ``SELECT
    pg_notify(...)`` before: one of the six round trips of a post with its logbook)."""
    stmt = T.insert().values(
        board=board,
        uuid=sa.bindparam("uuid"),
        name=sa.bindparam("name"),
        state=S.UNCLAIMED.value,
        priority=sa.bindparam("priority"),
        attempts=0,
        created_on=sa.bindparam("created_on"),
        updated_on=sa.bindparam("updated_on"),
        record=sa.bindparam("record"),
    )
    if notify:
        return stmt.returning(T.c.id, schema.notify(board))
    return stmt
