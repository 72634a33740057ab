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
counting the attempt. Consume and moves delete the job before its claim in their transaction, so no
other board takes the claim's deletion for a release and reads the job again.

The session decides what a claim is worth (``_zookeeper_session``); what a claim node holds and how
one left behind is released is ``_zookeeper_claims``. SUSPENDED (connection in trouble)
makes the board hand out no work and tells claimants ``IN_DOUBT``; the same session coming back tells
them ``CONFIRMED``; LOST tells them ``LOST``: the server has deleted their claims and other conductors
may have the jobs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import (
    JobBoardConnectionError,
    JobSetAsideError,
    MalformedJobError,
    NotFound,
    NotOwnerError,
    UnclaimableJobError,
)
from flowkit.jobboard.backends import _zookeeper_cancels as cancels
from flowkit.jobboard.backends import _zookeeper_claims as claims
from flowkit.jobboard.backends import _zookeeper_fleet
from flowkit.jobboard.backends import _zookeeper_operator as operator
from flowkit.jobboard.backends import _zookeeper_parking as parking
from flowkit.jobboard.backends._zookeeper_copy import JOB_NODE, WatchedCopy
from flowkit.jobboard.backends._zookeeper_session import Session
from flowkit.jobboard.base import DEFAULT_MAX_ATTEMPTS, SPREAD, ClaimEvent, JobBoard
from flowkit.jobboard.cancels import Told
from flowkit.jobboard.fleet import Member
from flowkit.jobboard.job import Job
from flowkit.jobboard.listing import JobEntry
from flowkit.states import JobState, check_job_transition

if TYPE_CHECKING:
    from flowkit.persistence.backends.base import Backend

LOG = logging.getLogger("flowkit.jobboard")


def _node(job: Job) -> str:
    return f"job-{job.sequence:010d}"


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
        # job uuid -> node name, claimed by this board; kazoo's thread clears it on LOST, hence the lock
        self._owned: dict[str, str] = {}
        # job uuid -> (claimant, the job node's version its claim wrote): consume's one-request path
        self._claimed: dict[str, tuple[str, int]] = {}
        self._owned_lock = threading.Lock()
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
                self._copy.start(self._client, self.timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._session.connected:
            return
        self._copy.stop()
        with self._owned_lock:
            self._owned.clear()
        self._session.stop()

    def _warn_bad(self, path: str, why: str) -> None:
        if path not in self._bad:
            self._bad.add(path)
            LOG.warning("board %r: skipping %s: %s", self.name, path, why)

    def _refresh(self) -> None:
        with self._errors("list the jobs"):
            self._copy.refresh()

    def _on_session(self, state: str, same_session: bool) -> None:
        """What the session's state means for this board's claims (see ``_zookeeper_session``)."""
        from kazoo.protocol.states import KazooState

        with self._owned_lock:
            owned = frozenset(self._owned)
            if state == KazooState.LOST:
                self._owned.clear()
                self._claimed.clear()
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
            with self._owned_lock:
                owned = list(self._owned.items())
            for job_uuid, node in owned:
                cancels.check(self, job_uuid, int(node[4:]), f"{self._jobs_path}/{node}")

    # -- posting and reading ------------------------------------------------------------------------

    def _post(self, job: Job) -> None:
        data = job.to_bytes()
        with self._errors(f"post job {job}"):
            path = self._client.create(f"{self._jobs_path}/job-", data, sequence=True)
        node = path.rsplit("/", 1)[1]
        job.sequence = int(node[4:])
        # Read-your-writes: counting or listing right after posting shows the job (see the copy).
        self._copy.add_posted(node, data)

    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> Iterator[Job]:
        if self._session.connected and not ensure_fresh:
            with self._copy.lock:
                return iter(self._copy.listing(only_unclaimed, time.time()))
        with self._copy.updating:  # no older watch listing may land between the refresh and the read
            self._refresh()
            with self._copy.lock:
                return iter(self._copy.listing(only_unclaimed, time.time()))

    def wait(self, timeout: float | None = None) -> Iterator[Job]:
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
        with self._copy.lock:
            return self._copy.count(only_unclaimed, time.time())

    def state_of(self, job: Job) -> JobState:
        node = _node(job)
        with self._errors(f"read the state of job {job}"):
            exists = self._client.exists
            if exists(f"{self._jobs_path}/{node}"):
                if exists(f"{self._claims_path}/{node}"):
                    return JobState.CLAIMED
                return JobState.WAITING if exists(f"{self._waiting_path}/{node}") else JobState.UNCLAIMED
            if exists(f"{self._aside_path}/{node}"):
                return JobState.SET_ASIDE
            if exists(f"{self._trash_path}/{node}"):
                return JobState.TRASHED
            if exists(f"{self._cancelled_path}/{node}"):
                return JobState.CANCELLED
        return JobState.COMPLETE

    def find_owner(self, job: Job) -> str | None:
        from kazoo.exceptions import NoNodeError

        with self._errors(f"find the owner of job {job}"):
            try:
                data, _ = self._client.get(f"{self._claims_path}/{_node(job)}")
            except NoNodeError:
                return None
        return claims.owner_name(data)

    def set_aside_jobs(self) -> list[Job]:
        return self._jobs_under(self._aside_path, "list the jobs set aside")

    def _jobs_under(self, where: str, what: str) -> list[Job]:
        from kazoo.exceptions import NoNodeError

        out = []
        with self._errors(what):
            for child in self._client.get_children(where):
                path = f"{where}/{child}"
                if not JOB_NODE.match(child):
                    self._warn_bad(path, "not a job node name")
                    continue
                try:
                    data, _ = self._client.get(path)
                    out.append(Job.from_bytes(self, data, int(child[4:])))
                except NoNodeError:
                    continue
                except MalformedJobError as exc:
                    self._warn_bad(path, str(exc))
        return sorted(out, key=Job.sort_key)

    def get_job(self, job_uuid: str) -> Job:
        from kazoo.exceptions import NoNodeError

        try:
            found = super().get_job(job_uuid)
        except NotFound:
            pass
        else:  # the copy lists jobs but is not told of changes to a record (a cancel): read it now
            with self._errors(f"read job {found}"), contextlib.suppress(NoNodeError, MalformedJobError):
                data, _ = self._client.get(f"{self._jobs_path}/{_node(found)}")
                return Job.from_bytes(self, data, found.sequence)
            return found
        with self._errors("list the jobs that are over"):
            for where in (self._trash_path, self._cancelled_path, self._history_path):
                for child in self._client.get_children(where):
                    with contextlib.suppress(Exception):
                        data, _ = self._client.get(f"{where}/{child}")
                        job = Job.from_bytes(self, data, int(child[4:]))
                        if job.uuid == job_uuid:
                            return job
        raise NotFound(f"no job {job_uuid!r} on board {self.name!r} (consumed, or never posted)")

    # -- claims -------------------------------------------------------------------------------------

    def _claim(self, job: Job, who: str, describe: bool = True) -> int:
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        self._session.usable(f"claim job {job}")
        parked: int | None = None
        # The job node is there and the transaction creates the claim only if there is none: UNCLAIMED.
        check_job_transition(job.uuid, JobState.UNCLAIMED, JobState.CLAIMED)
        node = _node(job)
        path, claim = f"{self._jobs_path}/{node}", f"{self._claims_path}/{node}"
        owner = claims.claim_data(who)
        with self._copy.lock:  # when the copy's version is still current, no read is needed
            cached, version = self._copy.jobs.get(node), self._copy.versions.get(node)
        session = self._session.session_id()  # the claim is worth something only in this session
        for _ in range(10):
            with self._errors(f"claim job {job}"):
                if cached is None or version is None:
                    cached, version = self._read(job)
                current = Job.from_record(self, cached.to_record(), job.sequence)
                previous = current.attempts
                current.attempts += 1
                parked, heard = parking.due(self, job, node)
                tx = self._client.transaction()
                tx.create(claim, owner, ephemeral=True)
                tx.set_data(path, current.to_bytes(), version=version)
                if parked is not None:  # due: the claim ends the park
                    tx.delete(f"{self._waiting_path}/{node}", version=parked)
                results = self._commit_claim(tx, claim)
                cached = version = None  # a retry reads afresh
            failure = claims.first_failure(results)
            if parked is not None and isinstance(results[2], NoNodeError):
                continue  # an event woke it meanwhile: claim it unparked
            if failure is None:
                # The job node's new mzxid is the zxid of this transaction, so the claim node's czxid:
                # ZooKeeper orders every transaction, so a later claim always has a higher one.
                fence = int(results[1].mzxid)
                break
            if isinstance(failure, NodeExistsError):
                with self._copy.lock:
                    self._copy.claimed.add(node)
                holder = repr(self.find_owner(job)) if describe else "another claimant"
                raise UnclaimableJobError(f"job {job} is already claimed by {holder}")
            if isinstance(failure, NoNodeError):
                raise UnclaimableJobError(f"job {job} is no longer on board {self.name!r}")
            if not isinstance(failure, BadVersionError):
                raise self._session.translate(failure, f"claim job {job}") from failure
        else:
            raise UnclaimableJobError(f"job {job} kept changing while being claimed; try again")
        job.attempts, job.last_reason, job.fence = current.attempts, current.last_reason, fence
        job.cancel_reason = current.cancel_reason
        # Kazoo's thread marks the session suspended before it clears _owned on LOST (under this
        # lock): a LOST that came before this point is seen here, one that comes after finds the job
        # in _owned and reports it.
        with self._owned_lock:
            self._owned[job.uuid] = node
            self._claimed[job.uuid] = (who, int(results[1].version))
            intact = self._session.session_id() == session and not self._session.suspended
            if not intact:
                del self._owned[job.uuid]
                del self._claimed[job.uuid]
        if not intact:
            claims.release(self._client, claim, session, self.timeout)
            raise UnclaimableJobError(
                f"job {job}: the ZooKeeper session was suspended or lost while claiming it; try again"
            )
        with self._copy.lock:
            self._copy.claimed.add(node)
            written_since = self._copy.changes.get(node, 0) - heard
        self._cancel_told.forget(job.uuid)  # a cancel request is told once per claim
        if not self._copy.events:
            cancels.watch(self, job, path)
        elif current.cancel_reason and self._cancel_told.first(job.uuid):  # asked before the claim
            self._emit_cancel(job.uuid, current.cancel_reason)
        elif written_since > 1:  # more than our claim wrote the record: maybe a cancel request
            cancels.check(self, job.uuid, job.sequence, path)
        return previous

    def claim_next(self, who: str) -> Job | None:
        """:meth:`JobBoard.claim_next` (a random one of the first :data:`SPREAD` jobs of the top
        priority, then board order), reading only the head of the copy: the whole listing is built only
        when every job of that window was taken meanwhile. Building it for every claim cost about a
        millisecond with 1,000 jobs on the board, as much as the claim itself (issue 13)."""
        if not self._session.connected:
            return super().claim_next(who)
        with self._copy.lock:
            window = self._copy.head(SPREAD, time.time())
        random.shuffle(window)
        for job in window:
            if self._claim_or_skip(job, who):
                return job
        if not window:
            return None
        tried = {job.uuid for job in window}
        with self._copy.lock:
            rest = [j for j in self._copy.listing(True, time.time()) if j.uuid not in tried]
        return next((job for job in rest if self._claim_or_skip(job, who)), None)

    def _claim_or_skip(self, job: Job, who: str) -> bool:
        """Claim ``job`` for :meth:`claim_next`: False when it is taken or set aside (a poison job)."""
        try:
            self._check_attempts(job, who, self._claim(job, who, describe=False))
        except JobSetAsideError as exc:
            LOG.warning("board %r: %s", self.name, exc)
            return False
        except UnclaimableJobError:
            return False
        return True

    def _read(self, job: Job) -> tuple[Job, int]:
        """The job as stored now, and its znode version."""
        from kazoo.exceptions import NoNodeError

        try:
            data, stat = self._client.get(f"{self._jobs_path}/{_node(job)}")
        except NoNodeError:
            raise UnclaimableJobError(f"job {job} is no longer on board {self.name!r}") from None
        try:
            return Job.from_bytes(self, data, job.sequence), stat.version
        except MalformedJobError as exc:
            raise UnclaimableJobError(f"job {job} on board {self.name!r}: {exc}") from None

    def _commit_claim(self, tx: Any, lock_path: str) -> list[Any]:
        """Commit a claim; when the answer is lost, make sure no claim of ours is left behind."""
        from kazoo.exceptions import ConnectionLoss

        try:
            return list(tx.commit())
        except ConnectionLoss:
            # The claim may or may not exist. Delete it if it is ours; if the session dies first,
            # ZooKeeper deletes it for us. Either way no orphan claim outlives this call for long.
            claims.release(self._client, lock_path, self._session.session_id(), self.timeout)
            raise

    def _owned_claim(self, job: Job, who: str, target: JobState) -> tuple[str, str, Any]:
        """The job's path, its claim's path and the claim's stat, once ``who`` here is known to hold it
        and a claimed job may move to ``target``."""
        from kazoo.exceptions import NoNodeError

        with self._owned_lock:
            owned = job.uuid in self._owned
        if not owned:
            try:
                holder = repr(self.find_owner(job))
            except JobBoardConnectionError:
                holder = "someone else (unknown while disconnected)"
            raise NotOwnerError(
                f"job {job} is claimed by {holder}, not by {who!r} through this board (or the claim was lost)"
            )
        node = _node(job)
        path, claim = f"{self._jobs_path}/{node}", f"{self._claims_path}/{node}"
        try:
            data, stat = self._client.get(claim)
        except NoNodeError:
            raise NotOwnerError(f"job {job} is not claimed (so {who!r} does not own it)") from None
        owner = claims.owner_name(data)
        if owner != who or stat.ephemeralOwner != self._session.session_id():
            raise NotOwnerError(f"job {job} is claimed by {owner!r} in another session, not by {who!r}")
        check_job_transition(job.uuid, JobState.CLAIMED, target)
        return path, claim, stat

    def consume(self, job: Job, who: str) -> None:
        with self._errors(f"consume job {job}"):
            if not self._consume_as_claimed(job, who):
                path, claim, stat = self._owned_claim(job, who, JobState.COMPLETE)
                tx = self._client.transaction()
                tx.check(claim, stat.version)
                tx.delete(path)  # the job before its claim: no board re-reads a job it sees released
                tx.delete(claim)
                if self.history > 0:
                    tx.create(f"{self._history_path}/{_node(job)}", operator.history_record(job, who))
                self._check(tx.commit(), job, who)
        self._copy.drop_removed(_node(job))
        with self._owned_lock:
            self._owned.pop(job.uuid, None)
            self._claimed.pop(job.uuid, None)
        if time.monotonic() - self._purged > operator.PURGE_EVERY:
            self._purged = time.monotonic()
            self._client.handler.spawn(self._purge_quietly)  # off the consumer's path

    def _consume_as_claimed(self, job: Job, who: str) -> bool:
        """Consume in one request when the job node is as ``who``'s claim here wrote it; False when it
        is not (or this board cannot tell), for the checked path to decide.

        Why the version is enough: a claim writes the job node (its attempts) in the transaction that
        creates the claim node, so no other claim can exist while the node keeps the version ours
        wrote; and the claim node must still be there (deleted with it), so a claim that died with its
        session fails the transaction too. Anything else writing the job (a cancel request) changes the
        version and sends the consume down the checked path, which reads the claim's owner.
        """
        node = _node(job)
        with self._owned_lock:
            mine = self._claimed.get(job.uuid) if job.uuid in self._owned else None
        if mine is None or mine[0] != who or self._session.suspended:
            return False
        check_job_transition(job.uuid, JobState.CLAIMED, JobState.COMPLETE)
        path = f"{self._jobs_path}/{node}"
        tx = self._client.transaction()
        tx.check(path, mine[1])
        tx.delete(path)  # the job before its claim, as in consume
        tx.delete(f"{self._claims_path}/{node}")
        if self.history > 0:
            tx.create(f"{self._history_path}/{node}", operator.history_record(job, who))
        return claims.first_failure(list(tx.commit())) is None

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

    def abandon(self, job: Job, who: str, reason: str | None = None, *, count: bool = True) -> None:
        with self._errors(f"abandon job {job}"):
            path, claim, stat = self._owned_claim(job, who, JobState.UNCLAIMED)
            data, job_stat = self._client.get(path)
            current = Job.from_bytes(self, data, job.sequence)
            if reason:
                current.last_reason = reason
            if not count:
                current.attempts = max(0, current.attempts - 1)
            tx = self._client.transaction()
            tx.check(claim, stat.version)
            tx.delete(claim)
            tx.set_data(path, current.to_bytes(), version=job_stat.version)
            self._check(tx.commit(), job, who)
        job.attempts, job.last_reason = current.attempts, current.last_reason
        with self._owned_lock:
            self._owned.pop(job.uuid, None)
            self._claimed.pop(job.uuid, None)

    # -- parked jobs (flowkit.jobboard.parking; the ZooKeeper side is _zookeeper_parking) ------------

    def _park(self, job: Job, who: str, wake_at: float | None, events: Sequence[str]) -> None:
        parking.park(self, job, who, wake_at, tuple(events))

    def _wake_waiting(self, names: Sequence[str]) -> int:
        return parking.wake_waiting(self, names)

    def trash(self, job: Job, who: str, reason: str | None = None) -> None:
        self._move(job, who, JobState.TRASHED, reason, "trash")

    def set_aside(self, job: Job, who: str, reason: str) -> None:
        self._move(job, who, JobState.SET_ASIDE, reason, "set aside")

    def _move(self, job: Job, who: str, target: JobState, reason: str | None, what: str) -> None:
        to = {JobState.TRASHED: self._trash_path, JobState.CANCELLED: self._cancelled_path}.get(
            target, self._aside_path
        )
        with self._errors(f"{what} job {job}"):
            path, claim, stat = self._owned_claim(job, who, target)
            data, job_stat = self._client.get(path)
            try:
                record = Job.from_bytes(self, data, job.sequence).to_record()
            except MalformedJobError:
                record = {"uuid": job.uuid, "name": job.name, "raw": data.decode("utf-8", "replace")}
            if target is JobState.CANCELLED:
                reason = record.get("cancel_reason") or reason
            if reason:
                record["last_reason"] = reason
            record.update(moved_by=who, moved_on=time.time())
            tx = self._client.transaction()
            tx.check(claim, stat.version)
            tx.create(f"{to}/{_node(job)}", json.dumps(record).encode())
            tx.delete(path, version=job_stat.version)  # the job before its claim, as in consume
            tx.delete(claim)
            self._check(tx.commit(), job, who)
        self._copy.drop_removed(_node(job))
        job.last_reason = reason or job.last_reason
        with self._owned_lock:
            self._owned.pop(job.uuid, None)
            self._claimed.pop(job.uuid, None)

    def _check(self, results: list[Any], job: Job, who: str) -> None:
        failure = claims.first_failure(results)
        if failure is not None:
            raise NotOwnerError(f"job {job} changed under {who!r} (claim lost or job moved): {failure!r}")

    # -- cancelling ---------------------------------------------------------------------------------

    def _request_cancel(self, job: Job, reason: str) -> None:
        cancels.request(self, job, reason, f"{self._jobs_path}/{_node(job)}")

    def cancelled_jobs(self) -> list[Job]:
        """The jobs that ended CANCELLED, with their reasons in ``cancel_reason``."""
        return self._jobs_under(self._cancelled_path, "list the cancelled jobs")

    def cancel_requested(self, job: Job) -> str | None:
        from kazoo.exceptions import NoNodeError

        with self._errors(f"read the cancel request of job {job}"):
            for where in (self._jobs_path, self._cancelled_path):
                try:
                    data, _ = self._client.get(f"{where}/{_node(job)}")
                except NoNodeError:
                    continue
                return Job.from_bytes(self, data, job.sequence).cancel_reason
        return None

    def mark_cancelled(self, job: Job, who: str) -> None:
        self._move(job, who, JobState.CANCELLED, None, "mark cancelled")

    def _job_changed(self, node: str) -> None:
        """A job's record changed (the copy's event, in the connection thread): if this board holds
        the job, read it for a cancel request."""
        with self._owned_lock:
            job_uuid = next((u for u, n in self._owned.items() if n == node), None)
        if job_uuid is not None:
            cancels.check(self, job_uuid, int(node[4:]), f"{self._jobs_path}/{node}")

    def _is_owned(self, job_uuid: str) -> bool:
        with self._owned_lock:
            return job_uuid in self._owned
