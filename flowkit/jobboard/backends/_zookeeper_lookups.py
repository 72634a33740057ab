"""What the ZooKeeper board reads from the tree itself rather than from its copy: a job's state, its
claim's owner, its record now, and the jobs under the directories the copy does not follow
(``set_aside/``, ``trash/``, ``cancelled/``, ``history/``).

Apart from the board because these are reads of the server's current state, each a few requests, for
operators and for the rare checks of the claim path; the copy (``_zookeeper_copy``) answers the
frequent questions (listings, counts, ``wait``) from memory.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from flowkit.exceptions import MalformedJobError, NotFound
from flowkit.jobboard.backends import _zookeeper_claims as claims
from flowkit.jobboard.backends._zookeeper_nodes import JOB_NODE, node_of
from flowkit.jobboard.job import Job
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard


def state_of(board: ZooKeeperJobBoard, job: Job) -> JobState:
    """The job's state: which directory holds its node (none: consumed)."""
    node = node_of(job)
    with board._errors(f"read the state of job {job}"):
        exists = board._client.exists
        if exists(f"{board._jobs_path}/{node}"):
            if exists(f"{board._claims_path}/{node}"):
                return JobState.CLAIMED
            return JobState.WAITING if exists(f"{board._waiting_path}/{node}") else JobState.UNCLAIMED
        if exists(f"{board._aside_path}/{node}"):
            return JobState.SET_ASIDE
        if exists(f"{board._trash_path}/{node}"):
            return JobState.TRASHED
        if exists(f"{board._cancelled_path}/{node}"):
            return JobState.CANCELLED
    return JobState.COMPLETE


def find_owner(board: ZooKeeperJobBoard, job: Job) -> str | None:
    """The name its claim node holds, or None when unclaimed."""
    from kazoo.exceptions import NoNodeError

    with board._errors(f"find the owner of job {job}"):
        try:
            data, _ = board._client.get(f"{board._claims_path}/{node_of(job)}")
        except NoNodeError:
            return None
    return claims.owner_name(data)


def jobs_under(board: ZooKeeperJobBoard, where: str, what: str) -> list[Job]:
    """The jobs whose records lie under ``where``, in board order (bad nodes warned about, skipped)."""
    from kazoo.exceptions import NoNodeError

    out = []
    with board._errors(what):
        for child in board._client.get_children(where):
            path = f"{where}/{child}"
            if not JOB_NODE.match(child):
                board._warn_bad(path, "not a job node name")
                continue
            try:
                data, _ = board._client.get(path)
                out.append(Job.from_bytes(board, data, int(child[4:])))
            except NoNodeError:
                continue
            except MalformedJobError as exc:
                board._warn_bad(path, str(exc))
    return sorted(out, key=Job.sort_key)


def current(board: ZooKeeperJobBoard, found: Job) -> Job:
    """``found`` (a job the copy lists) as its record is now: the copy is not told of every change
    to a record (a cancel request), so read it; ``found`` itself when it cannot be read."""
    from kazoo.exceptions import NoNodeError

    with board._errors(f"read job {found}"), contextlib.suppress(NoNodeError, MalformedJobError):
        data, _ = board._client.get(f"{board._jobs_path}/{node_of(found)}")
        return Job.from_bytes(board, data, found.sequence)
    return found


def over(board: ZooKeeperJobBoard, job_uuid: str) -> Job:
    """The job with this uuid among those trashed, cancelled or kept in the history."""
    with board._errors("list the jobs that are over"):
        for where in (board._trash_path, board._cancelled_path, board._history_path):
            for child in board._client.get_children(where):
                with contextlib.suppress(Exception):
                    data, _ = board._client.get(f"{where}/{child}")
                    job = Job.from_bytes(board, data, int(child[4:]))
                    if job.uuid == job_uuid:
                        return job
    raise NotFound(f"no job {job_uuid!r} on board {board.name!r} (consumed, or never posted)")


def cancel_requested(board: ZooKeeperJobBoard, job: Job) -> str | None:
    """The cancel request saved in the job's record, on the board or cancelled already."""
    from kazoo.exceptions import NoNodeError

    with board._errors(f"read the cancel request of job {job}"):
        for where in (board._jobs_path, board._cancelled_path):
            try:
                data, _ = board._client.get(f"{where}/{node_of(job)}")
            except NoNodeError:
                continue
            return Job.from_bytes(board, data, job.sequence).cancel_reason
    return None
