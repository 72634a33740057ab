"""Cancel requests on the ZooKeeper board: saved in the job's record, heard through a data watch.

``board.cancel`` writes ``cancel_reason`` into the job node's record, checked against the node's version
(a claim or an abandon writing the record at the same time makes it read and try again, and both keep
the field, since every write goes through :class:`~flowkit.jobboard.job.Job`). The board that claims a
job puts a data watch on its node for as long as it holds the claim: ZooKeeper tells it of a cancel
request within a round trip, and it tells its cancel listeners once per claim. The watch also fires
once when it is set, so a cancel asked before the claim is heard the same way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardError, MalformedJobError, NotFound
from flowkit.jobboard.cancels import refuse
from flowkit.jobboard.job import Job
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

ATTEMPTS = 10
"""How many times a cancel reads the job again when its record changed under it."""


def request(board: ZooKeeperJobBoard, job: Job, reason: str, path: str) -> None:
    """Save ``reason`` as the job's cancel request, unless one is saved already."""
    from kazoo.exceptions import BadVersionError, NoNodeError

    client = board._client
    for _ in range(ATTEMPTS):
        with board._errors(f"cancel job {job}"):
            try:
                data, stat = client.get(path)
            except NoNodeError:
                state = board.state_of(job)
                kept = client.exists(f"{board._history_path}/{path.rsplit('/', 1)[1]}")
                if state is JobState.COMPLETE and not kept:  # consumed and forgotten, or never posted
                    gone = f"no job {job.uuid!r} on board {board.name!r} (consumed, or never posted)"
                    raise NotFound(gone) from None
                raise refuse(job, state) from None
            try:
                current = Job.from_bytes(board, data, job.sequence)
            except MalformedJobError as exc:
                raise JobBoardError(f"cannot cancel job {job}: its record is malformed: {exc}") from None
            if current.cancel_reason:
                job.cancel_reason = current.cancel_reason
                return
            current.cancel_reason = reason
            try:
                written = client.set(path, current.to_bytes(), version=stat.version)
            except BadVersionError:
                continue
            job.cancel_reason = reason
            node = path.rsplit("/", 1)[1]
            board._copy.replace(node, current, written.version)
            with contextlib.suppress(NoNodeError):  # parked: claimable at once, to be reverted
                client.delete(f"{board._waiting_path}/{node}")
            return
    raise JobBoardError(f"job {job} kept changing while being cancelled; try again")


def watch(board: ZooKeeperJobBoard, job: Job, path: str) -> None:
    """Watch the claimed job's node; tell the board's cancel listeners once when a cancel shows up."""
    from kazoo.recipe.watchers import DataWatch

    job_uuid, sequence, told = job.uuid, job.sequence, board._cancel_told
    told.forget(job_uuid)

    def on_data(data: bytes | None, _stat: Any) -> bool:
        if data is None or not board._is_owned(job_uuid):
            return False  # the claim has ended: stop watching
        try:
            reason = Job.from_bytes(board, data, sequence).cancel_reason
        except MalformedJobError:
            return True
        if reason and told.first(job_uuid):
            board._emit_cancel(job_uuid, reason)
        return True

    DataWatch(board._client, path, on_data)
