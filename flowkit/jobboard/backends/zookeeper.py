"""The job board on ZooKeeper (kazoo): claims are ephemeral nodes that die with their owner's session.

Layout under the board's path::

    jobs/job-0000000042        the job's JSON record (a sequential node: the number orders the board)
    claims/job-0000000042      the claim: ephemeral, holding {"owner": ...}, gone with its session;
                               its creation zxid is the claim's fencing token (``job.fence``)
    set_aside/job-0000000042   jobs kept off the board, with their reason
    waiting/job-0000000042     a parked job (state WAITING): its wake-up time and awaited events;
                               a claim at the time, or an event, deletes it
    trash/job-0000000042       trashed jobs
    cancelled/job-0000000042   jobs cancelled (``board.cancel``) once their flow was reverted

A cancel request is saved in the job's record (``cancel_reason``); the board holding the claim hears
of the change (``_zookeeper_cancels``), reads the record and tells its cancel listeners at once.

The board keeps a copy of ``jobs``, ``claims`` and ``waiting`` current through persistent recursive
watches (``_zookeeper_events``; children watches on servers before 3.6), see ``_zookeeper_copy``:
listings and :meth:`wait` read the copy and wake on the events, and nothing polls. Every operation
that changes a job commits one ZooKeeper transaction checked against the job's version, so the copy
is only ever a hint; before it, :func:`~flowkit.states.check_job_transition` must allow the move.
A claim is one request when the copy knows the job's version: the transaction creating the claim and
counting the attempt (``_zookeeper_claiming``). Consume and moves (``_zookeeper_moves``) delete the job
before its claim in their transaction, so no other board takes the claim's deletion for a release and
reads the job again. The claims this board believes it holds are ``_zookeeper_held``; what it reads
from the tree itself rather than from the copy is ``_zookeeper_lookups``.

The session decides what a claim is worth (``_zookeeper_session``); what a claim node holds and how
one left behind is released is ``_zookeeper_claims``. SUSPENDED (connection in trouble)
makes the board hand out no work and tells claimants ``IN_DOUBT``; the same session coming back tells
them ``CONFIRMED``; LOST tells them ``LOST``: the server has deleted their claims and other conductors
may have the jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardConnectionError, NotFound
from flowkit.jobboard.backends import _zookeeper_cancels as cancels
from flowkit.jobboard.backends import _zookeeper_claiming as claiming
from flowkit.jobboard.backends import _zookeeper_fleet
from flowkit.jobboard.backends import _zookeeper_lookups as lookups
from flowkit.jobboard.backends import _zookeeper_moves as moves
from flowkit.jobboard.backends import _zookeeper_operator as operator
from flowkit.jobboard.backends import _zookeeper_parking as parking
from flowkit.jobboard.backends._zookeeper_copy import WatchedCopy
from flowkit.jobboard.backends._zookeeper_held import HeldJobs
from flowkit.jobboard.backends._zookeeper_nodes import node_of
from flowkit.jobboard.backends._zookeeper_session import Session
from flowkit.jobboard.base import DEFAULT_MAX_ATTEMPTS, ClaimEvent, JobBoard
from flowkit.jobboard.cancels import Told
from flowkit.jobboard.fleet import Member
from flowkit.jobboard.job import Job
from flowkit.jobboard.listing import JobEntry
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.persistence.backends.base import Backend

LOG = logging.getLogger("flowkit.jobboard")


MAX_RECORD_BYTES = 1_000_000
"""The largest job record posted here. ZooKeeper refuses a request over ``jute.maxbuffer`` (1 MiB less
one byte by default) by dropping the connection, which looks like a lost server; the margin leaves
room for the request's framing and for the reason an abandon adds to the record."""


class ZooKeeperJobBoard(JobBoard):
    """A job board in a ZooKeeper tree; see the module docstring for the layout and session rules."""

    max_record_bytes = MAX_RECORD_BYTES
    max_record_why = " (ZooKeeper's jute.maxbuffer: 1 MiB per request, by default)"

    def __init__(
        self,
        name: str,
        hosts: str = "127.0.0.1:2181",
        path: str = "/flowkit",
        *,
        timeout: float = 10.0,
        auth: tuple[str, str] | None = None,
        world_read: bool = False,
        persistence: Backend | str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        client: Any = None,
        history: float = operator.DEFAULT_HISTORY,
    ) -> None:
        """``timeout`` is the session timeout in seconds: how long a dead claimant keeps its claims.

        ``auth`` (user, password) authenticates with ZooKeeper's digest scheme, and every node the
        board creates then gets an ACL that gives that user all rights (and the world read rights
        with ``world_read``). ``client`` is an existing KazooClient to share; the board then leaves
        starting and stopping it to the caller.
        """
        super().__init__(name, persistence=persistence, max_attempts=max_attempts)
        self.hosts = hosts
        self.path = "/" + path.strip("/") if path.strip("/") else "/flowkit"
        self.timeout = timeout
        self._jobs_path = f"{self.path}/jobs"
        self._claims_path = f"{self.path}/claims"
        self._aside_path = f"{self.path}/set_aside"
        self._trash_path = f"{self.path}/trash"
        self._cancelled_path = f"{self.path}/cancelled"
        self._waiting_path = f"{self.path}/waiting"
        self._history_path = f"{self.path}/history"
        self.history = history
        """Seconds a consumed job stays listed under ``history/`` (0: none kept)."""
        self._purged = 0.0
        self._bad: set[str] = set()  # paths already warned about
        self._copy = WatchedCopy(self, self._jobs_path, self._claims_path, self._warn_bad, self._waiting_path)
        self._copy.on_change = self._job_changed
        self._held = HeldJobs()  # the claims this board made; kazoo's thread clears it on LOST
        self._following = False  # the copy follows the tree (from the first read: see _follow)
        self._follow_lock = threading.Lock()
        self._cancel_told = Told()
        self._session = Session(name, hosts, self.path, timeout, auth, world_read, client, self._on_session)
        self._errors = self._session.errors

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session.connected

    @property
    def _client(self) -> Any:
        return self._session.client

    def connect(self) -> None:
        if self._session.connected:
            return
        self._session.start()
        try:
            with self._errors("create its paths"):
                paths = (
                    self._jobs_path,
                    self._claims_path,
                    self._aside_path,
                    self._trash_path,
                    self._cancelled_path,
                    self._waiting_path,
                    self._history_path,
                )
                for path in paths:
                    self._client.ensure_path(path, acl=self._session.acl())
                # Credentials the tree's ACL refuses fail here, not at the first read (see _follow).
                self._client.get(self._jobs_path)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._session.connected:
            return
        with self._follow_lock:
            self._following = False
            self._copy.stop()
        self._held.uuids(clear=True)
        self._session.stop()

    def _follow(self) -> None:
        """Follow the tree from now on (its watches and a first listing), the first time the board
        reads its copy: a listing, a count, :meth:`wait` or a claim. Nothing while disconnected.

        Why not at :meth:`connect`: a board that follows hears every job's post, claim and consume
        (four or five events per job, and a read of each posted record), and one that only posts (a
        front end, the benchmark's poster) never reads its copy: it would pay that for every job the
        conductors run (issue 13).
        """
        if self._following or not self._session.connected:
            return
        with self._follow_lock:
            if self._is_following():  # another thread started it meanwhile
                return
            try:
                with self._errors("follow the board"):
                    self._copy.start(self._client, self.timeout)
            except BaseException:
                self._copy.stop()  # no watch routed twice by the next try
                raise
            self._following = True

    def _is_following(self) -> bool:
        """Whether the board follows the tree now, read afresh (another thread may have just started)."""
        return self._following

    def _warn_bad(self, path: str, why: str) -> None:
        if path not in self._bad:
            self._bad.add(path)
            LOG.warning("board %r: skipping %s: %s", self.name, path, why)

    def _refresh(self) -> None:
        if not self._following:
            self._follow()  # which lists the board
            if self._is_following():
                return
        with self._errors("list the jobs"):
            self._copy.refresh()

    def _on_session(self, state: str, same_session: bool) -> None:
        """What the session's state means for this board's claims (see ``_zookeeper_session``)."""
        from kazoo.protocol.states import KazooState

        owned = self._held.uuids(clear=state == KazooState.LOST)
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._copy.disconnected()  # the server forgets a connection's persistent watches
        if state == KazooState.SUSPENDED:
            self._emit(ClaimEvent.IN_DOUBT, owned)
        elif state == KazooState.LOST:
            self._emit(ClaimEvent.LOST, owned)
        elif state == KazooState.CONNECTED:
            if same_session and owned:
                self._emit(ClaimEvent.CONFIRMED, owned)
            # Jobs posted or released while we were away: the watches only report later changes.
            if self._following:
                self._client.handler.spawn(self._refresh_quietly)
            with self._copy.changed:
                self._copy.changed.notify_all()

    def _refresh_quietly(self) -> None:
        try:
            self._refresh()
        except Exception as exc:  # the next watch event or reconnect tries again
            LOG.info("board %r: refresh after reconnect failed: %s", self.name, exc)
            return
        if self._copy.events:  # a cancel request made while away went unheard: read the held jobs
            for job_uuid, node in self._held.nodes():
                cancels.check(self, job_uuid, int(node[4:]), f"{self._jobs_path}/{node}")

    # -- posting and reading ------------------------------------------------------------------------

    def _post(self, job: Job) -> None:
        data = job.to_bytes()
        with self._errors(f"post job {job}"):
            path = self._client.create(f"{self._jobs_path}/job-", data, sequence=True)
        node = path.rsplit("/", 1)[1]
        job.sequence = int(node[4:])
        # Read-your-writes: counting or listing right after posting shows the job (see the copy); a
        # board not following yet lists the board, this job included, when it starts to.
        with self._follow_lock:
            if self._following:
                self._copy.add_posted(node, data)

    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> Iterator[Job]:
        self._follow()
        if self._session.connected and not ensure_fresh:
            with self._copy.lock:
                return iter(self._copy.listing(only_unclaimed, time.time()))
        with self._copy.updating:  # no older watch listing may land between the refresh and the read
            self._refresh()
            with self._copy.lock:
                return iter(self._copy.listing(only_unclaimed, time.time()))

    def wait(self, timeout: float | None = None) -> Iterator[Job]:
        self._follow()
        deadline = None if timeout is None else time.monotonic() + timeout
        copy = self._copy
        with copy.changed:
            while True:
                if not self._session.connected:
                    raise JobBoardConnectionError(f"board {self.name!r} is not connected")
                if not self._session.suspended:
                    jobs = copy.listing(True, time.time())
                    if jobs:
                        return iter(jobs)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return iter(())
                wake = copy.next_wake()  # a parked job due before then: wake up for it
                if wake is not None:
                    until_wake = max(0.001, wake - time.time())
                    remaining = until_wake if remaining is None else min(remaining, until_wake)
                copy.changed.wait(remaining)

    def job_count(self, only_unclaimed: bool = False) -> int:
        self._follow()
        with self._copy.lock:
            return self._copy.count(only_unclaimed, time.time())

    def state_of(self, job: Job) -> JobState:
        return lookups.state_of(self, job)

    def find_owner(self, job: Job) -> str | None:
        return lookups.find_owner(self, job)

    def set_aside_jobs(self) -> list[Job]:
        return lookups.jobs_under(self, self._aside_path, "list the jobs set aside")

    def get_job(self, job_uuid: str) -> Job:
        try:
            found = super().get_job(job_uuid)
        except NotFound:
            return lookups.over(self, job_uuid)
        return lookups.current(self, found)

    # -- claims (_zookeeper_claiming) and their ends (_zookeeper_moves) -----------------------------

    def _claim(self, job: Job, who: str, describe: bool = True) -> int:
        self._follow()  # a claimant hears cancel requests (and claims by the copy's versions)
        return claiming.claim(self, job, who, describe)

    def claim_next(self, who: str) -> Job | None:
        """:meth:`JobBoard.claim_next`, reading only the head of the copy (see ``_zookeeper_claiming``)."""
        if not self._session.connected:
            return super().claim_next(who)
        self._follow()
        return claiming.claim_next(self, who)

    def consume(self, job: Job, who: str) -> None:
        moves.consume(self, job, who)
        if time.monotonic() - self._purged > operator.PURGE_EVERY:
            self._purged = time.monotonic()
            self._client.handler.spawn(self._purge_quietly)  # off the consumer's path

    def abandon(self, job: Job, who: str, reason: str | None = None, *, count: bool = True) -> None:
        moves.abandon(self, job, who, reason, count)

    def trash(self, job: Job, who: str, reason: str | None = None) -> None:
        moves.move(self, job, who, JobState.TRASHED, reason, "trash")

    def set_aside(self, job: Job, who: str, reason: str) -> None:
        moves.move(self, job, who, JobState.SET_ASIDE, reason, "set aside")

    def mark_cancelled(self, job: Job, who: str) -> None:
        moves.move(self, job, who, JobState.CANCELLED, None, "mark cancelled")

    def _purge_quietly(self) -> None:
        try:
            self.purge_history()
        except Exception as exc:  # the next consume tries again
            LOG.info("board %r: purging the history failed: %s", self.name, exc)

    # -- operator verbs (see _zookeeper_operator) ---------------------------------------------------

    def finished_jobs(self) -> list[JobEntry]:
        return operator.finished_jobs(self)

    def requeue(self, job: Job | str) -> Job:
        return operator.requeue(self, job)

    def trash_job(self, job: Job | str, reason: str | None = None) -> None:
        operator.trash(self, job, reason)

    def announce(self, member: Member) -> None:
        _zookeeper_fleet.announce(self, member)

    def fleet(self) -> list[Member]:
        return _zookeeper_fleet.members(self)

    def purge_history(self, older_than: float | None = None) -> int:
        return operator.purge(self, self.history if older_than is None else older_than)

    # -- parked jobs (flowkit.jobboard.parking; the ZooKeeper side is _zookeeper_parking) ------------

    def _park(self, job: Job, who: str, wake_at: float | None, events: Sequence[str]) -> None:
        parking.park(self, job, who, wake_at, tuple(events))

    def _wake_waiting(self, names: Sequence[str]) -> int:
        return parking.wake_waiting(self, names)

    # -- cancelling ---------------------------------------------------------------------------------

    def _request_cancel(self, job: Job, reason: str) -> None:
        cancels.request(self, job, reason, f"{self._jobs_path}/{node_of(job)}")

    def cancelled_jobs(self) -> list[Job]:
        """The jobs that ended CANCELLED, with their reasons in ``cancel_reason``."""
        return lookups.jobs_under(self, self._cancelled_path, "list the cancelled jobs")

    def cancel_requested(self, job: Job) -> str | None:
        return lookups.cancel_requested(self, job)

    def _job_changed(self, node: str) -> None:
        """A job's record changed (the copy's event, in the connection thread): if this board holds
        the job, read it for a cancel request."""
        job_uuid = self._held.uuid_of(node)
        if job_uuid is not None:
            cancels.check(self, job_uuid, int(node[4:]), f"{self._jobs_path}/{node}")

    def _is_owned(self, job_uuid: str) -> bool:
        return self._held.holds(job_uuid)
