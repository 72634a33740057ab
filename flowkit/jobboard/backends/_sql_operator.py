"""The SQL board's operator verbs and listing: one statement each, on the same table as the claims.

A consumed job's row stays, as COMPLETE, for the board's history retention (``?history=SECONDS``,
default a week; 0 keeps none), so operators still see what ran; a consume purges the rows past it
at most once a minute (at every consume with ``history=0``). Requeue and trash are conditional
updates like the claim statements: a job claimed meanwhile is refused, never moved under its owner.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flowkit.exceptions import AmbiguousPrefixError, NotFound
from flowkit.jobboard.backends import _sql_claims as claims
from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.job import Job
from flowkit.jobboard.listing import JobEntry
from flowkit.states import JobState, check_operator_transition

if TYPE_CHECKING:
    from flowkit.jobboard.backends.sql import SQLJobBoard

T = schema.jobs
S = JobState
FINISHED = (S.COMPLETE.value, S.TRASHED.value)
DEFAULT_HISTORY = 7 * 86400.0
"""Seconds a consumed job stays listed on a SQL board unless its URL says ``?history=``."""
PURGE_EVERY = 60.0
"""A consuming board purges the history at most this often (at every consume with ``history=0``)."""


def consumed_values(now: float | sa.BindParameter[float]) -> dict[str, object]:
    """What consuming writes to the row it keeps (the owner stays: who ran it)."""
    return {"state": S.COMPLETE.value, "lease_token": None, "lease_expires": None, "updated_on": now}


def purge(board: SQLJobBoard, conn: sa.Connection, older_than: float, now: float) -> int:
    """Delete ``board``'s consumed rows last changed more than ``older_than`` seconds ago."""
    stmt = T.delete().where(
        T.c.board == board.name, T.c.state == S.COMPLETE, T.c.updated_on <= now - older_than
    )
    return int(conn.execute(stmt).rowcount or 0)


def _state(row: Any, now: float) -> tuple[JobState, str | None]:
    state = S(row.state)
    if state is S.CLAIMED and (row.lease_expires is None or row.lease_expires < now):
        return S.UNCLAIMED, None  # the lease ran out: the claim is over though the row still says so
    if state in (S.UNCLAIMED, S.SET_ASIDE):
        return state, None
    return state, row.owner


def listing(board: SQLJobBoard, finished: bool) -> list[JobEntry]:
    now = time.time()
    where = T.c.board == board.name
    if not finished:
        where = sa.and_(where, T.c.state.notin_(FINISHED))
    query = sa.select(T).where(where).order_by(*claims.CLAIM_ORDER)
    with board._tx("list the jobs") as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        job = board._job(row)
        if job is not None:
            state, owner = _state(row, now)
            out.append(JobEntry(job, state, owner, float(row.updated_on)))
    return out


def find(board: SQLJobBoard, prefix: str) -> Job:
    """The job whose uuid is or starts with ``prefix``: one indexed query (``uuid`` is unique)."""
    prefix = prefix.strip().lower()
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        sa.select(T)
        .where(T.c.board == board.name, T.c.uuid.like(f"{escaped}%", escape="\\"))
        .order_by(T.c.uuid)
        .limit(6)
    )
    with board._tx("find a job") as conn:
        rows = conn.execute(query).all()
    exact = [r for r in rows if r.uuid == prefix]
    if exact or len(rows) == 1:
        job = board._job((exact or rows)[0])
        if job is not None:
            return job
    if not rows:
        raise NotFound(f"no job {prefix!r} (uuid or uuid prefix) on board {board.name!r}")
    with board._tx("find a job") as conn:
        uuids = (
            conn.execute(
                sa.select(T.c.uuid).where(T.c.board == board.name, T.c.uuid.like(f"{escaped}%", escape="\\"))
            )
            .scalars()
            .all()
        )
    raise AmbiguousPrefixError("job", prefix, sorted(uuids))


def describe(board: SQLJobBoard, job: Job) -> JobEntry:
    row = _row(board, job, f"read job {job}")
    state, owner = _state(row, time.time())
    return JobEntry(job, state, owner, float(row.updated_on))


def _in_state(state: JobState, now: float) -> sa.ColumnElement[bool]:
    """Rows in ``state`` as :func:`_state` reads them (a claim whose lease ran out is UNCLAIMED)."""
    live = sa.and_(T.c.state == S.CLAIMED, T.c.lease_expires >= now)
    if state is S.CLAIMED:
        return live
    if state is S.UNCLAIMED:
        return sa.or_(T.c.state == S.UNCLAIMED, sa.and_(T.c.state == S.CLAIMED, sa.not_(live)))
    return T.c.state == state


def page(
    board: SQLJobBoard,
    states: Collection[JobState] | None,
    owner: str | None,
    finished: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[JobEntry]]:
    now = time.time()
    where: list[sa.ColumnElement[bool]] = [T.c.board == board.name]
    if states:
        where.append(sa.or_(*(_in_state(S(s), now) for s in states)))
    elif not finished:
        where.append(T.c.state.notin_(FINISHED))
    if owner is not None:
        held = sa.or_(_in_state(S.CLAIMED, now), T.c.state.in_(FINISHED))
        where.append(sa.and_(T.c.owner == owner, held))
    condition = sa.and_(*where)
    query = sa.select(T).where(condition).order_by(T.c.updated_on.desc(), T.c.id.desc())
    with board._tx("list the jobs") as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(T).where(condition)).scalar_one())
        rows = conn.execute(query.limit(limit).offset(offset)).all()
    out = []
    for row in rows:
        job = board._job(row)
        if job is not None:
            state, holder = _state(row, now)
            out.append(JobEntry(job, state, holder, float(row.updated_on)))
    return total, out


def finished_jobs(board: SQLJobBoard) -> list[JobEntry]:
    entries = [e for e in listing(board, True) if e.state.value in FINISHED]
    return sorted(entries, key=lambda e: -(e.updated_on or 0.0))


def _row(board: SQLJobBoard, job: Job | str, what: str) -> Any:
    uuid = job if isinstance(job, str) else job.uuid
    with board._tx(what) as conn:
        row = conn.execute(sa.select(T).where(T.c.board == board.name, T.c.uuid == uuid)).first()
    if row is None:
        raise NotFound(f"no job {uuid!r} on board {board.name!r}")
    return row


def requeue(board: SQLJobBoard, job: Job | str) -> Job:
    row = _row(board, job, "requeue a job")
    now = time.time()
    check_operator_transition(row.uuid, _state(row, now)[0], S.UNCLAIMED)
    stmt = (
        T.update()
        .where(T.c.id == row.id, T.c.state == S.SET_ASIDE)
        .values(state=S.UNCLAIMED.value, owner=None, attempts=0, updated_on=now)
    )
    with board._tx(f"requeue job {row.uuid}") as conn:
        done = conn.execute(stmt).rowcount == 1
        if done:
            board._notify(conn)
    if not done:  # moved meanwhile: say what it is now
        check_operator_transition(
            row.uuid, _state(_row(board, job, "requeue a job"), time.time())[0], S.UNCLAIMED
        )
    board._wake()
    return board.get_job(row.uuid)


def trash(board: SQLJobBoard, job: Job | str, reason: str | None) -> None:
    row = _row(board, job, "trash a job")
    now = time.time()
    check_operator_transition(row.uuid, _state(row, now)[0], S.TRASHED)
    movable = sa.or_(T.c.state == S.SET_ASIDE, claims.available(board.name, now))
    stmt = (
        T.update()
        .where(T.c.id == row.id, movable)
        .values(
            state=S.TRASHED.value,
            owner=None,
            lease_token=None,
            lease_expires=None,
            last_reason=sa.func.coalesce(reason, T.c.last_reason),
            updated_on=now,
        )
    )
    with board._tx(f"trash job {row.uuid}") as conn:
        done = conn.execute(stmt).rowcount == 1
    if not done:
        check_operator_transition(
            row.uuid, _state(_row(board, job, "trash a job"), time.time())[0], S.TRASHED
        )
