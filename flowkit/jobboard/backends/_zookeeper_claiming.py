"""Claiming a job on the ZooKeeper board: one transaction creating the ephemeral claim node and
counting the attempt in the job's record, checked against the record's version.

Apart from the board because this is the one move that takes a job (the others end a claim:
``_zookeeper_moves``), with its own retries, its session checks and its reading of the copy: a claim
is one request when the copy knows the job's version, and :func:`claim_next` reads only the head of
the copy. What a claim node holds and how one left behind is released is ``_zookeeper_claims``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobSetAsideError, MalformedJobError, UnclaimableJobError
from flowkit.jobboard.backends import _zookeeper_cancels as cancels
from flowkit.jobboard.backends import _zookeeper_claims as claims
from flowkit.jobboard.backends import _zookeeper_parking as parking
from flowkit.jobboard.backends._zookeeper_nodes import node_of
from flowkit.jobboard.base import SPREAD
from flowkit.jobboard.job import Job
from flowkit.states import JobState, check_job_transition

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

LOG = logging.getLogger("flowkit.jobboard")

TRIES = 10
"""How many times a claim reads the job again when its record changed under it."""


def claim(board: ZooKeeperJobBoard, job: Job, who: str, describe: bool = True) -> int:
    """Claim ``job`` for ``who``; the attempts it had before. ``describe``: name the holder when taken."""
    from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

    board._session.usable(f"claim job {job}")
    parked: int | None = None
    # The job node is there and the transaction creates the claim only if there is none: UNCLAIMED.
    check_job_transition(job.uuid, JobState.UNCLAIMED, JobState.CLAIMED)
    node = node_of(job)
    path, claim_path = f"{board._jobs_path}/{node}", f"{board._claims_path}/{node}"
    owner = claims.claim_data(who)
    copy = board._copy
    with copy.lock:  # when the copy's version is still current, no read is needed
        cached, version = copy.jobs.get(node), copy.versions.get(node)
    session = board._session.session_id()  # the claim is worth something only in this session
    for _ in range(TRIES):
        with board._errors(f"claim job {job}"):
            if cached is None or version is None:
                cached, version = read(board, job)
            current = Job.from_record(board, cached.to_record(), job.sequence)
            previous = current.attempts
            current.attempts += 1
            parked, heard = parking.due(board, job, node)
            tx = board._client.transaction()
            tx.create(claim_path, owner, ephemeral=True)
            tx.set_data(path, current.to_bytes(), version=version)
            if parked is not None:  # due: the claim ends the park
                tx.delete(f"{board._waiting_path}/{node}", version=parked)
            results = commit(board, tx, claim_path)
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
            with copy.lock:
                copy.claimed.add(node)
            holder = repr(board.find_owner(job)) if describe else "another claimant"
            raise UnclaimableJobError(f"job {job} is already claimed by {holder}")
        if isinstance(failure, NoNodeError):
            raise UnclaimableJobError(f"job {job} is no longer on board {board.name!r}")
        if not isinstance(failure, BadVersionError):
            raise board._session.translate(failure, f"claim job {job}") from failure
    else:
        raise UnclaimableJobError(f"job {job} kept changing while being claimed; try again")
    job.attempts, job.last_reason, job.fence = current.attempts, current.last_reason, fence
    job.cancel_reason = current.cancel_reason

    def intact() -> bool:
        return board._session.session_id() == session and not board._session.suspended

    if not board._held.add_if(job.uuid, node, who, int(results[1].version), intact):
        claims.release(board._client, claim_path, session, board.timeout)
        raise UnclaimableJobError(
            f"job {job}: the ZooKeeper session was suspended or lost while claiming it; try again"
        )
    with copy.lock:
        copy.claimed.add(node)
        written_since = copy.changes.get(node, 0) - heard
    board._cancel_told.forget(job.uuid)  # a cancel request is told once per claim
    if not copy.events:
        cancels.watch(board, job, path)
    elif current.cancel_reason and board._cancel_told.first(job.uuid):  # asked before the claim
        board._emit_cancel(job.uuid, current.cancel_reason)
    elif written_since > 1:  # more than our claim wrote the record: maybe a cancel request
        cancels.check(board, job.uuid, job.sequence, path)
    return previous


def claim_next(board: ZooKeeperJobBoard, who: str) -> Job | None:
    """:meth:`JobBoard.claim_next` (a random one of the first :data:`SPREAD` jobs of the top priority,
    then board order), reading only the head of the copy: the whole listing is built only when every
    job of that window was taken meanwhile. Building it for every claim cost about a millisecond with
    1,000 jobs on the board, as much as the claim itself (issue 13)."""
    copy = board._copy
    with copy.lock:
        window = copy.head(SPREAD, time.time())
    random.shuffle(window)
    for job in window:
        if _claim_or_skip(board, job, who):
            return job
    if not window:
        return None
    tried = {job.uuid for job in window}
    with copy.lock:
        rest = [j for j in copy.listing(True, time.time()) if j.uuid not in tried]
    return next((job for job in rest if _claim_or_skip(board, job, who)), None)


def _claim_or_skip(board: ZooKeeperJobBoard, job: Job, who: str) -> bool:
    """Claim ``job`` for :func:`claim_next`: False when it is taken or set aside (a poison job)."""
    try:
        board._check_attempts(job, who, claim(board, job, who, describe=False))
    except JobSetAsideError as exc:
        LOG.warning("board %r: %s", board.name, exc)
        return False
    except UnclaimableJobError:
        return False
    return True


def read(board: ZooKeeperJobBoard, job: Job) -> tuple[Job, int]:
    """The job as stored now, and its znode version."""
    from kazoo.exceptions import NoNodeError

    try:
        data, stat = board._client.get(f"{board._jobs_path}/{node_of(job)}")
    except NoNodeError:
        raise UnclaimableJobError(f"job {job} is no longer on board {board.name!r}") from None
    try:
        return Job.from_bytes(board, data, job.sequence), stat.version
    except MalformedJobError as exc:
        raise UnclaimableJobError(f"job {job} on board {board.name!r}: {exc}") from None


def commit(board: ZooKeeperJobBoard, tx: Any, claim_path: str) -> list[Any]:
    """Commit a claim; when the answer is lost, make sure no claim of ours is left behind."""
    from kazoo.exceptions import ConnectionLoss

    try:
        return list(tx.commit())
    except ConnectionLoss:
        # The claim may or may not exist. Delete it if it is ours; if the session dies first,
        # ZooKeeper deletes it for us. Either way no orphan claim outlives this call for long.
        claims.release(board._client, claim_path, board._session.session_id(), board.timeout)
        raise
