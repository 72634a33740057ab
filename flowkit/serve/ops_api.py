"""REST routes of ``flowkit serve`` for operators: jobs (list, post, requeue, trash), flow verbs (retry,
resume) and the fleet. Every uuid in a path may be a unique prefix; the models below make the OpenAPI
document at ``/openapi.json`` complete. Handlers are plain functions (FastAPI runs them in its thread
pool), since the board and persistence clients block.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from flowkit.exceptions import FlowkitError
from flowkit.jobboard.fleet import Member
from flowkit.jobboard.listing import JobEntry
from flowkit.serve.fleet import fleet as whole_fleet
from flowkit.serve.state import ServeState, get_state
from flowkit.states import JobState

__all__ = ["router"]

router = APIRouter()

UUID_PREFIX = re.compile(r"^[0-9a-fA-F-]{1,36}$")


class BadUUID(FlowkitError, ValueError):
    """A path's uuid is not a uuid or a prefix of one (hex digits and dashes, at most 36)."""


class Problem(BaseModel):
    """What went wrong, in one line."""

    detail: str


class JobOut(BaseModel):
    """A job with its state and owner as the board says now."""

    uuid: str
    name: str
    state: JobState
    owner: str | None = Field(None, description="Who holds the claim, or who consumed the job last")
    priority: int
    attempts: int
    last_reason: str | None
    created_on: float = Field(description="Seconds since the epoch when the job was posted")
    updated_on: float | None = Field(None, description="Seconds since the epoch of its last change")
    book_uuid: str | None
    flow_uuid: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: JobEntry) -> JobOut:
        job = entry.job
        return cls(
            uuid=job.uuid,
            name=job.name,
            state=entry.state,
            owner=entry.owner,
            priority=job.priority,
            attempts=job.attempts,
            last_reason=job.last_reason,
            created_on=job.created_on,
            updated_on=entry.updated_on,
            book_uuid=job.book_uuid,
            flow_uuid=job.flow_uuid,
            details=job.details,
        )


class JobPage(BaseModel):
    """Jobs matching the filters (newest change first): ``limit`` of ``total`` from ``offset``."""

    total: int
    offset: int
    jobs: list[JobOut]


class NewJob(BaseModel):
    """A job running the flow a factory builds; checked against the server's allow list."""

    factory: str = Field(description="'package.module:function', as for `flowkit jobs post`")
    store: dict[str, Any] | None = Field(None, description="The flow's inputs")
    name: str | None = Field(None, description="The job's name (default: the factory's)")
    kwargs: dict[str, Any] | None = Field(None, description="Keyword arguments for the factory")
    priority: int = Field(0, ge=-2, le=2)


class Reason(BaseModel):
    """Why an operator trashes a job (kept with it)."""

    reason: str | None = None


class CancelReason(BaseModel):
    """Why an operator cancels a job or a flow (kept with the job; the flow's revert sees it)."""

    reason: str = Field(default="cancelled through the API", min_length=1, max_length=1000)


class Event(BaseModel):
    """What ``board.send_event(name, payload)`` sends: the payload becomes the waiting atom's result."""

    payload: Any = None


class EventSent(BaseModel):
    """An event saved in persistence; parked jobs waiting for it are claimable now."""

    name: str


class MemberOut(BaseModel):
    """A conductor of the fleet, as its last heartbeat described it."""

    name: str
    kind: str
    host: str
    pid: int
    started: float
    heartbeat: float = Field(description="Seconds since the epoch of the last heartbeat")
    interval: float
    running: list[str] = Field(
        description="What it runs now: job uuids (conductors), request uuids (workers)"
    )
    status: str = Field(description="alive, gone (missed 3 heartbeats or its session ended) or stopped")

    @classmethod
    def of(cls, m: Member) -> MemberOut:
        return cls(
            name=m.name,
            kind=m.kind,
            host=m.host,
            pid=m.pid,
            started=m.started,
            heartbeat=m.heartbeat,
            interval=m.interval,
            running=list(m.running),
            status=m.status().value,
        )


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Bad input (uuid, factory, store)"},
    401: {"model": Problem, "description": "A token is needed"},
    404: {"model": Problem, "description": "No such job or flow"},
    409: {"model": Problem, "description": "Its state forbids the verb"},
    503: {"model": Problem, "description": "The board or the database is unreachable"},
}

State = Annotated[ServeState, Depends(get_state)]
UUIDPath = Annotated[str, Path(description="A uuid or a unique prefix of one", min_length=1, max_length=36)]


def _uuid(value: str) -> str:
    if not UUID_PREFIX.match(value):
        raise BadUUID(f"{value!r} is not a uuid or a uuid prefix (hex digits and dashes)")
    return value.lower()


def _entry(state: ServeState, uuid: str) -> JobEntry:
    board = state.board
    return board.describe(board.find_job(_uuid(uuid)))


@router.get("/jobs", response_model=JobPage, responses=ERRORS, tags=["jobs"])
def list_jobs(
    state: State,
    job_state: Annotated[list[JobState] | None, Query(alias="state", description="Only these states")] = None,
    owner: Annotated[str | None, Query(description="Only jobs held (or consumed) by this owner")] = None,
    history: Annotated[bool, Query(description="Include consumed and trashed jobs")] = True,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """The jobs on the board, set aside, and (``history``) consumed or trashed within its retention."""
    total, page = state.board.page(job_state, owner, finished=history, limit=limit, offset=offset)
    return JobPage(total=total, offset=offset, jobs=[JobOut.of(e) for e in page])


@router.post("/jobs", response_model=JobOut, status_code=201, responses=ERRORS, tags=["jobs"])
def post_job(state: State, new: NewJob) -> JobOut:
    """Post a job for a conductor; a factory outside the allow list is refused and nothing is saved."""
    job = state.board.post_flow(
        new.factory, store=new.store, factory_kwargs=new.kwargs, name=new.name, priority=new.priority
    )
    return JobOut.of(JobEntry(job, JobState.UNCLAIMED))


@router.get("/jobs/{uuid}", response_model=JobOut, responses=ERRORS, tags=["jobs"])
def get_job(state: State, uuid: UUIDPath) -> JobOut:
    """One job, in any state."""
    return JobOut.of(_entry(state, uuid))


@router.post("/jobs/{uuid}/requeue", response_model=JobOut, responses=ERRORS, tags=["jobs"])
def requeue_job(state: State, uuid: UUIDPath) -> JobOut:
    """Offer a set-aside job again, its attempts reset."""
    job = state.board.requeue(state.board.find_job(_uuid(uuid)))
    return JobOut.of(_entry(state, job.uuid))


@router.post("/jobs/{uuid}/trash", response_model=JobOut, responses=ERRORS, tags=["jobs"])
def trash_job(state: State, uuid: UUIDPath, body: Reason | None = None) -> JobOut:
    """Take an unclaimed or set-aside job off the board without running it (a claimed one: 409)."""
    job = state.board.find_job(_uuid(uuid))
    state.board.trash_job(job, body.reason if body else None)
    return JobOut.of(_entry(state, job.uuid))


@router.post("/jobs/{uuid}/cancel", response_model=JobOut, responses=ERRORS, tags=["jobs"])
def cancel_job(state: State, uuid: UUIDPath, body: CancelReason | None = None) -> JobOut:
    """Ask for a job to be cancelled: the conductor holding it (or the next to claim it) reverts its
    flow and the job ends CANCELLED. A job that is over: 409."""
    board = state.board
    job = board.cancel(board.find_job(_uuid(uuid)), (body or CancelReason()).reason)
    return JobOut.of(_entry(state, job.uuid))


@router.post("/flows/{uuid}/cancel", response_model=JobOut, responses=ERRORS, tags=["flows"])
def cancel_flow(state: State, uuid: UUIDPath, body: CancelReason | None = None) -> JobOut:
    """Cancel a flow through the job that runs it (a flow no job runs: 404)."""
    job = state.board.cancel_flow(_uuid(uuid), (body or CancelReason()).reason)
    return JobOut.of(_entry(state, job.uuid))


EVENT_NAME = Annotated[str, Path(description="The event's name", min_length=1, max_length=200)]


@router.post("/events/{name}", response_model=EventSent, status_code=202, responses=ERRORS, tags=["events"])
def send_event(state: State, name: EVENT_NAME, body: Event | None = None) -> EventSent:
    """Send an event: saved in persistence (a wait that starts later still finds it) and every job
    parked on it made claimable now."""
    state.board.send_event(name, (body or Event()).payload)
    return EventSent(name=name)


@router.post("/flows/{uuid}/retry", response_model=JobOut, status_code=201, responses=ERRORS, tags=["flows"])
def retry_flow(state: State, uuid: UUIDPath) -> JobOut:
    """Run a REVERTED or FAILED flow again from its start (same flow detail and store): the job posted."""
    job = state.board.retry_flow(_uuid(uuid))
    return JobOut.of(JobEntry(job, JobState.UNCLAIMED))


@router.post("/flows/{uuid}/resume", response_model=JobOut, status_code=201, responses=ERRORS, tags=["flows"])
def resume_flow(state: State, uuid: UUIDPath) -> JobOut:
    """Resume a SUSPENDED flow: the job posted for it."""
    job = state.board.resume_flow(_uuid(uuid))
    return JobOut.of(JobEntry(job, JobState.UNCLAIMED))


@router.get("/fleet", response_model=list[MemberOut], responses=ERRORS, tags=["fleet"])
def fleet(state: State) -> list[MemberOut]:
    """The conductors that announced themselves on the board (alive, gone or stopped), and the workers
    that answer on the broker when the server has one (``--transport``)."""
    s = state.settings
    return [MemberOut.of(m) for m in whole_fleet(state.board, s.transport, s.exchange)]
