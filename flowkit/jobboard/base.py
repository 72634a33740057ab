"""The job board contract every backend implements (ZooKeeper, SQL), and what they share.

A board holds jobs; a conductor claims one, runs its flow, and consumes it. A claim lasts only as long
as its claimant is alive (a ZooKeeper session, an SQL lease), so a dead conductor's jobs go back to the
others. Claimants hear about their claims through :class:`ClaimEvent`s as soon as the board knows:
``IN_DOUBT`` when the connection is in trouble (stop starting work: the claims may be about to go),
``CONFIRMED`` when it recovered with the claims intact, ``LOST`` when they are gone. That is what
keeps two conductors from running one job at once.

Backends implement the abstract methods; posting a flow, claiming the next job and the poison-job
rule (set a job aside once it has been claimed ``max_attempts`` times without being consumed) are
written once, here.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import uuid as uuidlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardError, JobSetAsideError, NotFound, UnclaimableJobError
from flowkit.jobboard.fleet import Member
from flowkit.jobboard.job import Job, JobPriority
from flowkit.jobboard.listing import JobEntry
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.persistence.backends.base import Backend
    from flowkit.persistence.models import FlowDetail, LogBook

LOG = logging.getLogger("flowkit.jobboard")

DEFAULT_MAX_ATTEMPTS = 3
SPREAD = 8
"""How many jobs at the head of the board ``claim_next`` picks among at random (see there)."""


class ClaimEvent(StrEnum):
    """What a board tells claimants about their claims (see the module docstring)."""

    IN_DOUBT = "IN_DOUBT"
    """The board's connection is in trouble: the claims may vanish; start no new work."""
    CONFIRMED = "CONFIRMED"
    """The connection recovered and the claims are still held: carry on."""
    LOST = "LOST"
    """The claims are gone; another claimant may already be running these jobs."""


ClaimListener = Callable[[ClaimEvent, frozenset[str]], None]
"""Called as ``listener(event, job_uuids)`` from the board's own thread; must return quickly."""

CancelListener = Callable[[str, str], None]
"""Called as ``listener(job_uuid, reason)`` from the board's own thread when a job this board holds a
claim on is asked to cancel (see :meth:`JobBoard.cancel`); must return quickly."""


class JobBoard(abc.ABC):
    """A board of jobs shared by posters and conductors. Build one with :func:`backends.fetch`."""

    max_record_bytes: int | None = None
    """The largest job record (JSON, in bytes) the board stores; None: no limit of its own."""
    max_record_why: str = ""
    """Where :attr:`max_record_bytes` comes from, for the error that refuses a larger job."""
    allow: list[str] | None = None
    """Module prefixes the factory of every flow posted here must be defined under (None: any).

    Set it with ``boards.fetch(..., allow=[...])`` (``flowkit jobs post --allow``): posters then
    refuse what a conductor with the same ``--allow`` would set aside, and save nothing.
    """

    def __init__(
        self, name: str, *, persistence: Backend | str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> None:
        if max_attempts < 1:
            raise JobBoardError(f"board {name!r}: max_attempts must be at least 1, got {max_attempts}")
        self.name = name
        self.persistence = persistence
        """The persistence backend that holds the jobs' logbooks (needed by :meth:`post_flow`)."""
        self.max_attempts = max_attempts
        self._listeners: list[ClaimListener] = []
        self._listeners_lock = threading.Lock()
        self._cancel_listeners: list[CancelListener] = []

    # -- life cycle -------------------------------------------------------------------------------

    @abc.abstractmethod
    def connect(self) -> None:
        """Connect (idempotent); raises :class:`~flowkit.exceptions.JobBoardConnectionError`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Disconnect; this board's claims are released at once (idempotent)."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    def __enter__(self) -> JobBoard:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- posting ----------------------------------------------------------------------------------

    def post(
        self,
        name: str,
        book: LogBook | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        priority: int = JobPriority.NORMAL,
        flow_detail: FlowDetail | str | None = None,
    ) -> Job:
        """Post a job; ``book`` and ``flow_detail`` (one of its flow details, or its uuid) say what to run.

        A job the board cannot store, or whose factory is outside :attr:`allow`, is refused with a
        :class:`~flowkit.exceptions.FlowkitError` and nothing is posted.
        """
        job = self._new_job(name, book, details, priority, flow_detail)
        self._post(job)
        return job

    def _new_job(
        self,
        name: str,
        book: LogBook | None,
        details: Mapping[str, Any] | None,
        priority: int,
        flow_detail: FlowDetail | str | None,
        factory: dict[str, Any] | None = None,
    ) -> Job:
        """The job :meth:`post` would post, checked; nothing is written (``post_flow`` saves in between).
        ``factory``: the flow detail's factory record, carried in the job (``post_flow``)."""
        from flowkit.jobboard import posting

        flow_uuid = flow_detail if isinstance(flow_detail, str) or flow_detail is None else flow_detail.uuid
        job = Job(
            board=self,
            uuid=str(uuidlib.uuid4()),
            name=name,
            details=dict(details or {}),
            priority=int(priority),
            book_uuid=book.uuid if book is not None else None,
            book_name=book.name if book is not None else None,
            flow_uuid=flow_uuid,
            factory=factory,
        )
        job.check(self.max_record_bytes, f"{self!r}{self.max_record_why}")
        posting.check_factories(self, book, flow_detail)
        return job

    def post_flow(
        self,
        factory: str | Callable[..., Any],
        store: Mapping[str, Any] | None = None,
        *,
        factory_args: Sequence[Any] = (),
        factory_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        priority: int = JobPriority.NORMAL,
        details: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create the logbook and flow detail, save the factory and the store, and post: one call.

        ``factory`` is an import path (``"pkg.module:function"``) or a module-level function; a
        conductor rebuilds the flow from it. ``store`` goes with the job (``details["store"]``), as
        TaskFlow's conductors expect.
        """
        from flowkit.jobboard import posting

        return posting.post_flow(self, factory, store, factory_args, factory_kwargs, name, priority, details)

    @abc.abstractmethod
    def _post(self, job: Job) -> None:
        """Store a new job (and set its ``sequence``)."""

    def _post_with_logbook(self, job: Job, book: LogBook, persistence: Backend) -> bool:
        """Save ``book`` in ``persistence`` and store ``job`` in one transaction, where the board can
        (its table lives in the same database as ``persistence``); False: nothing done, the caller
        saves the logbook first and then posts. Why: each commit of a post is a disk flush on the path
        from post to start."""
        return False

    # -- reading ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> Iterator[Job]:
        """The jobs on the board, highest priority then oldest first.

        ``ensure_fresh`` reads the board now instead of the copy kept up to date by watches.
        Records that are not valid jobs are skipped, each with one warning naming where it is.
        """

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> Iterator[Job]:
        """Block until an unclaimed job is on the board and return the unclaimed jobs.

        Woken by the board (a watch, a notification), not by polling. Unlike TaskFlow, which raises
        NotFound, an expired ``timeout`` returns an empty iterator, so ``for job in board.wait(1)``
        loops need no ``try``.
        """

    def wait_claimable(self, timeout: float | None = None) -> None:
        """Block until a job may be claimable, or ``timeout`` passed: what a claim loop waits on
        between :meth:`claim_next` calls that found nothing.

        Unlike :meth:`wait` it returns no jobs, so a board that must read them from its server
        (SQL) can return as soon as it is woken: the caller's next ``claim_next`` reads the board
        anyway, and one round trip less lies between a post and its claim.
        """
        for _ in self.wait(timeout):
            break

    @abc.abstractmethod
    def job_count(self, only_unclaimed: bool = False) -> int: ...

    @abc.abstractmethod
    def state_of(self, job: Job) -> JobState:
        """The job's state, read from the board now."""

    @abc.abstractmethod
    def find_owner(self, job: Job) -> str | None:
        """Who holds the claim on ``job`` now, or None."""

    @abc.abstractmethod
    def set_aside_jobs(self) -> list[Job]:
        """The jobs kept off the board, with their reasons in ``last_reason``."""

    def get_job(self, job_uuid: str) -> Job:
        """The job with this uuid, on the board or set aside; :class:`NotFound` otherwise."""
        for job in self.iterjobs(ensure_fresh=True):
            if job.uuid == job_uuid:
                return job
        for job in self.set_aside_jobs():
            if job.uuid == job_uuid:
                return job
        raise NotFound(f"no job {job_uuid!r} on board {self.name!r} (consumed, trashed, or never posted)")

    def load_book(self, job: Job) -> LogBook | None:
        """The job's logbook from :attr:`persistence`, or None when there is none to load."""
        if self.persistence is None or job.book_uuid is None:
            return None
        from flowkit.jobboard.posting import persistence_of

        with persistence_of(self).get_connection() as conn:
            return conn.get_logbook(job.book_uuid)

    # -- claiming ---------------------------------------------------------------------------------

    def claim(self, job: Job, who: str) -> None:
        """Claim ``job`` for ``who``; :class:`UnclaimableJobError` when someone has it or it is gone.

        A job already claimed ``max_attempts`` times without being consumed is set aside instead,
        with :class:`JobSetAsideError` (a poison job must not cycle between conductors forever).
        """
        self._check_attempts(job, who, self._claim(job, who))

    def _check_attempts(self, job: Job, who: str, previous: int) -> None:
        """Set a freshly claimed job aside when its earlier claims reached ``max_attempts``."""
        if previous >= self.max_attempts:
            reason = f"claimed {previous} times without being consumed (max_attempts={self.max_attempts})" + (
                f"; last: {job.last_reason}" if job.last_reason else ""
            )
            self.set_aside(job, who, reason)
            raise JobSetAsideError(str(job), reason)

    @abc.abstractmethod
    def _claim(self, job: Job, who: str, describe: bool = True) -> int:
        """Take the claim and count the attempt; return the attempts made before this one.

        ``describe=False``: a lost race needs no owner named in the error (claim_next swallows it).
        """

    def claim_next(self, who: str) -> Job | None:
        """Claim the next job that can be claimed (poison jobs met on the way are set aside).

        Claimants racing for the head of the board would collide on every job, so each starts at a
        random one of the first :data:`SPREAD` jobs of the top priority, then goes on in board order.
        """
        jobs = list(self.iterjobs(only_unclaimed=True))
        if len(jobs) > 1:
            window = [j for j in jobs[:SPREAD] if j.priority == jobs[0].priority]
            random.shuffle(window)
            jobs[: len(window)] = window
        for job in jobs:
            try:
                self._check_attempts(job, who, self._claim(job, who, describe=False))
            except JobSetAsideError as exc:
                LOG.warning("board %r: %s", self.name, exc)
                continue
            except UnclaimableJobError:
                continue
            return job
        return None

    @abc.abstractmethod
    def consume(self, job: Job, who: str) -> None:
        """The flow has ended: remove the job. Only the owner may; :class:`NotOwnerError` otherwise."""

    @abc.abstractmethod
    def abandon(self, job: Job, who: str, reason: str | None = None, *, count: bool = True) -> None:
        """Give the job back for another claimant (owner only).

        ``count=False`` for an abandon that is not the job's fault (a conductor shutting down): it
        does not bring the job nearer to being set aside.
        """

    @abc.abstractmethod
    def trash(self, job: Job, who: str, reason: str | None = None) -> None:
        """Move the job off the board without running it, kept for inspection (owner only)."""

    @abc.abstractmethod
    def set_aside(self, job: Job, who: str, reason: str) -> None:
        """Move the job off the board with ``reason`` (owner only): it cannot or must not run."""

    # -- cancelling -------------------------------------------------------------------------------

    def cancel(self, job: Job | str, reason: str) -> Job:
        """Ask for ``job`` (or the job with this uuid) to be cancelled, from any client; returns the job.

        The conductor holding the job hears of it within about a second (a ZooKeeper watch, a poll of
        the SQL row, woken by NOTIFY on PostgreSQL) and cancels its engine; a job nobody holds is
        cancelled by the next conductor that claims it. Either way its flow is reverted and the job ends
        CANCELLED with ``reason``. Asking again keeps the first reason. A job that is over (consumed,
        trashed, set aside, cancelled) cannot be: :class:`~flowkit.exceptions.JobBoardError` says which
        state it is in; one never posted or long gone: :class:`~flowkit.exceptions.NotFound`.
        """
        from flowkit.jobboard import cancels

        found = self.get_job(job) if isinstance(job, str) else job
        self._request_cancel(found, cancels.check_reason(found, reason))
        return found

    def cancel_flow(self, flow_uuid: str, reason: str) -> Job:
        """Cancel the flow detail ``flow_uuid`` (or the start of it) through the job that runs it.

        A flow that no job on this board runs cannot be reached from here (:class:`NotFound` says so):
        one run by an engine outside a conductor is cancelled with ``engine.cancel()`` in its process.
        """
        from flowkit.jobboard import cancels

        return cancels.cancel_flow(self, flow_uuid, reason)

    @abc.abstractmethod
    def _request_cancel(self, job: Job, reason: str) -> None:
        """Save the cancel request on the job (unless one is saved already); refuse a job that is over."""

    @abc.abstractmethod
    def cancelled_jobs(self) -> list[Job]:
        """The jobs that ended CANCELLED, with their reasons in ``cancel_reason``."""

    @abc.abstractmethod
    def cancel_requested(self, job: Job) -> str | None:
        """The reason of the cancel asked for ``job``, read from the board now, or None."""

    @abc.abstractmethod
    def mark_cancelled(self, job: Job, who: str) -> None:
        """The owner reverted the flow of a job asked to cancel: it ends CANCELLED (owner only)."""

    def add_cancel_listener(self, listener: CancelListener) -> None:
        with self._listeners_lock:
            self._cancel_listeners.append(listener)

    def remove_cancel_listener(self, listener: CancelListener) -> None:
        with self._listeners_lock:
            if listener in self._cancel_listeners:
                self._cancel_listeners.remove(listener)

    def _emit_cancel(self, job_uuid: str, reason: str) -> None:
        with self._listeners_lock:
            listeners = list(self._cancel_listeners)
        for listener in listeners:
            try:
                listener(job_uuid, reason)
            except Exception:
                LOG.exception("board %r: cancel listener %r failed on job %s", self.name, listener, job_uuid)

    # -- parked jobs (durable waits) -----------------------------------------------------------------

    def park(self, job: Job, who: str, wake_at: float | None = None, events: Sequence[str] = ()) -> None:
        """Give the job back in state WAITING (owner only) until ``wake_at`` (epoch seconds) or one of
        ``events`` is sent; parking does not count as an attempt. See :mod:`flowkit.jobboard.parking`."""
        from flowkit.jobboard import parking

        parking.park(self, job, who, wake_at, events)

    def send_event(self, name: str, payload: Any = None) -> None:
        """Save the event in :attr:`persistence` and make every job waiting for it claimable now (the
        arguments of ``engine.send_event``)."""
        from flowkit.jobboard import parking

        parking.send_event(self, name, payload)

    def _park(self, job: Job, who: str, wake_at: float | None, events: Sequence[str]) -> None:
        """Move the owned, CLAIMED job to WAITING with its wake-up time and events; release the claim."""
        raise JobBoardError(f"board {self!r} cannot park jobs")

    def _wake_waiting(self, names: Sequence[str]) -> int:
        """Make the WAITING jobs awaiting any of ``names`` claimable now; return how many."""
        raise JobBoardError(f"board {self!r} cannot park jobs")

    # -- operator verbs ---------------------------------------------------------------------------

    def listing(self, *, finished: bool = True) -> list[JobEntry]:
        """Every job with its state and owner; ``finished``: consumed and trashed ones kept too."""
        from flowkit.jobboard.listing import generic_listing

        return generic_listing(self, finished)

    def page(
        self,
        states: Collection[JobState] | None = None,
        owner: str | None = None,
        *,
        finished: bool = True,
        limit: int = 500,
        offset: int = 0,
    ) -> tuple[int, list[JobEntry]]:
        """(how many jobs match, up to ``limit`` of them from ``offset``), newest change first.

        ``states``: only these; ``owner``: only the jobs it holds or consumed; ``finished``: consumed
        and trashed jobs count too. A SQL board answers with two queries whatever its history holds.
        """
        from flowkit.jobboard.listing import generic_page

        return generic_page(self, states, owner, finished, limit, offset)

    def finished_jobs(self) -> list[JobEntry]:
        """Jobs consumed or trashed that the board still keeps (for its history retention), newest first."""
        return []

    def find_job(self, prefix: str) -> Job:
        """The job whose uuid is or starts with ``prefix``, in any state (operators type prefixes)."""
        from flowkit.jobboard.listing import find_by_prefix

        return find_by_prefix(self, prefix)

    def describe(self, job: Job) -> JobEntry:
        """``job`` with its state and owner read from the board now."""
        state = self.state_of(job)
        if state in (JobState.COMPLETE, JobState.TRASHED):  # who consumed or moved it, and when
            for entry in self.finished_jobs():
                if entry.job.uuid == job.uuid:
                    return entry
        return JobEntry(job, state, self.find_owner(job))

    def requeue(self, job: Job | str) -> Job:
        """Offer a set-aside job again (UNCLAIMED, attempts reset): an operator fixed its cause."""
        raise JobBoardError(f"{self!r} cannot requeue jobs")

    def trash_job(self, job: Job | str, reason: str | None = None) -> None:
        """Move a job nobody holds (unclaimed or set aside) to the trash without running it.

        Unlike :meth:`trash`, which only the claim's owner may call: this is the operator's verb. A
        claimed job is refused with :class:`~flowkit.exceptions.InvalidStateError` (cancel it instead).
        """
        raise JobBoardError(f"{self!r} cannot trash jobs it does not hold")

    def retry_flow(self, flow: str) -> Job:
        """Run a REVERTED or FAILED flow (uuid or prefix) again from its start; see ``flow_verbs``."""
        from flowkit.jobboard.flow_verbs import retry_flow

        return retry_flow(self, flow)

    def resume_flow(self, flow: str) -> Job:
        """Post a job resuming a SUSPENDED flow (uuid or prefix); see ``flow_verbs``."""
        from flowkit.jobboard.flow_verbs import resume_flow

        return resume_flow(self, flow)

    def announce(self, member: Member) -> None:
        """Write ``member``'s heartbeat record (see :mod:`flowkit.jobboard.fleet`)."""
        raise JobBoardError(f"{self!r} keeps no fleet")

    def fleet(self) -> list[Member]:
        """The conductors that announced themselves here, alive, gone or stopped."""
        return []

    def purge_history(self, older_than: float | None = None) -> int:
        """Forget finished jobs older than ``older_than`` seconds (default: the board's retention)."""
        return 0

    # -- claim events -----------------------------------------------------------------------------

    def add_claim_listener(self, listener: ClaimListener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_claim_listener(self, listener: ClaimListener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: ClaimEvent, job_uuids: frozenset[str]) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, job_uuids)
            except Exception:
                LOG.exception("board %r: claim listener %r failed on %s", self.name, listener, event)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
