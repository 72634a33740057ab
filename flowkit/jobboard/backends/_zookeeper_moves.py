"""Ending a claim on the ZooKeeper board: consume, abandon, and the moves to ``trash/``, ``set_aside/``
and ``cancelled/``; each one transaction checked against the claim node (or, for consume, against the
job node's version the claim wrote).

Apart from the board because these moves share one rule, and it is theirs alone: the claimant must
still hold the claim in this board's session (:func:`owned_claim`), and each transaction deletes the
job before its claim, so no other board takes the claim's deletion for a release and reads the job
again. Parking (``_zookeeper_parking``) ends a claim by the same rule.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardConnectionError, MalformedJobError, NotOwnerError
from flowkit.jobboard.backends import _zookeeper_claims as claims
from flowkit.jobboard.backends import _zookeeper_operator as operator
from flowkit.jobboard.backends._zookeeper_nodes import node_of
from flowkit.jobboard.job import Job
from flowkit.states import JobState, check_job_transition

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard


def owned_claim(board: ZooKeeperJobBoard, job: Job, who: str, target: JobState) -> tuple[str, str, Any]:
    """The job's path, its claim's path and the claim's stat, once ``who`` on ``board`` is known to
    hold it and a claimed job may move to ``target``."""
    from kazoo.exceptions import NoNodeError

    if not board._held.holds(job.uuid):
        try:
            holder = repr(board.find_owner(job))
        except JobBoardConnectionError:
            holder = "someone else (unknown while disconnected)"
        raise NotOwnerError(
            f"job {job} is claimed by {holder}, not by {who!r} through this board (or the claim was lost)"
        )
    node = node_of(job)
    path, claim = f"{board._jobs_path}/{node}", f"{board._claims_path}/{node}"
    try:
        data, stat = board._client.get(claim)
    except NoNodeError:
        raise NotOwnerError(f"job {job} is not claimed (so {who!r} does not own it)") from None
    owner = claims.owner_name(data)
    if owner != who or stat.ephemeralOwner != board._session.session_id():
        raise NotOwnerError(f"job {job} is claimed by {owner!r} in another session, not by {who!r}")
    check_job_transition(job.uuid, JobState.CLAIMED, target)
    return path, claim, stat


def check(results: list[Any], job: Job, who: str) -> None:
    """Raise :class:`NotOwnerError` if the transaction that was to end ``who``'s claim failed."""
    failure = claims.first_failure(results)
    if failure is not None:
        raise NotOwnerError(f"job {job} changed under {who!r} (claim lost or job moved): {failure!r}")


def consume(board: ZooKeeperJobBoard, job: Job, who: str) -> None:
    with board._errors(f"consume job {job}"):
        if not _consume_as_claimed(board, job, who):
            path, claim, stat = owned_claim(board, job, who, JobState.COMPLETE)
            tx = board._client.transaction()
            tx.check(claim, stat.version)
            tx.delete(path)  # the job before its claim: no board re-reads a job it sees released
            tx.delete(claim)
            if board.history > 0:
                tx.create(f"{board._history_path}/{node_of(job)}", operator.history_record(job, who))
            check(tx.commit(), job, who)
    board._copy.drop_removed(node_of(job))
    board._held.drop(job.uuid)


def _consume_as_claimed(board: ZooKeeperJobBoard, job: Job, who: str) -> bool:
    """Consume in one request when the job node is as ``who``'s claim here wrote it; False when it is
    not (or this board cannot tell), for the checked path to decide.

    Why the version is enough: a claim writes the job node (its attempts) in the transaction that
    creates the claim node, so no other claim can exist while the node keeps the version ours wrote;
    and the claim node must still be there (deleted with it), so a claim that died with its session
    fails the transaction too. Anything else writing the job (a cancel request) changes the version
    and sends the consume down the checked path, which reads the claim's owner.
    """
    node = node_of(job)
    mine = board._held.as_claimed(job.uuid)
    if mine is None or mine[0] != who or board._session.suspended:
        return False
    check_job_transition(job.uuid, JobState.CLAIMED, JobState.COMPLETE)
    path = f"{board._jobs_path}/{node}"
    tx = board._client.transaction()
    tx.check(path, mine[1])
    tx.delete(path)  # the job before its claim, as in consume
    tx.delete(f"{board._claims_path}/{node}")
    if board.history > 0:
        tx.create(f"{board._history_path}/{node}", operator.history_record(job, who))
    return claims.first_failure(list(tx.commit())) is None


def abandon(board: ZooKeeperJobBoard, job: Job, who: str, reason: str | None, count: bool) -> None:
    """Give the claim back, the job's record keeping ``reason``; ``count=False``: the attempt is
    given back too."""
    with board._errors(f"abandon job {job}"):
        path, claim, stat = owned_claim(board, job, who, JobState.UNCLAIMED)
        data, job_stat = board._client.get(path)
        current = Job.from_bytes(board, data, job.sequence)
        if reason:
            current.last_reason = reason
        if not count:
            current.attempts = max(0, current.attempts - 1)
        tx = board._client.transaction()
        tx.check(claim, stat.version)
        tx.delete(claim)
        tx.set_data(path, current.to_bytes(), version=job_stat.version)
        check(tx.commit(), job, who)
    job.attempts, job.last_reason = current.attempts, current.last_reason
    board._held.drop(job.uuid)


def move(
    board: ZooKeeperJobBoard, job: Job, who: str, target: JobState, reason: str | None, what: str
) -> None:
    """Move the owned job to ``trash/``, ``cancelled/`` or ``set_aside/`` (by ``target``), its record
    saying why, who moved it and when."""
    to = {JobState.TRASHED: board._trash_path, JobState.CANCELLED: board._cancelled_path}.get(
        target, board._aside_path
    )
    with board._errors(f"{what} job {job}"):
        path, claim, stat = owned_claim(board, job, who, target)
        data, job_stat = board._client.get(path)
        try:
            record = Job.from_bytes(board, data, job.sequence).to_record()
        except MalformedJobError:
            record = {"uuid": job.uuid, "name": job.name, "raw": data.decode("utf-8", "replace")}
        if target is JobState.CANCELLED:
            reason = record.get("cancel_reason") or reason
        if reason:
            record["last_reason"] = reason
        record.update(moved_by=who, moved_on=time.time())
        tx = board._client.transaction()
        tx.check(claim, stat.version)
        tx.create(f"{to}/{node_of(job)}", json.dumps(record).encode())
        tx.delete(path, version=job_stat.version)  # the job before its claim, as in consume
        tx.delete(claim)
        check(tx.commit(), job, who)
    board._copy.drop_removed(node_of(job))
    job.last_reason = reason or job.last_reason
    board._held.drop(job.uuid)
