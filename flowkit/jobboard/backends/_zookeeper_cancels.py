"""Cancel requests on the ZooKeeper board: saved in the job's record, heard as a change of that record.

``board.cancel`` writes ``cancel_reason`` into the job node's record, checked against the node's version
(a claim or an abandon writing the record at the same time makes it read and try again, and both keep
the field, since every write goes through :class:`~flowkit.jobboard.job.Job`).

The board holding the claim hears of the request as a change of the job's record: with persistent
watches (``_zookeeper_events``) every change reaches it anyway, and it reads the record of a job it
holds when one does (:func:`check`); a request made before the claim is in the record the claim itself
wrote, so the claimant knows it at once, and one made while its own claim was being committed shows as
a second change (``WatchedCopy.changes``). On servers without persistent watches the board puts a data
watch on each job it holds instead (:func:`watch`). Either way its cancel listeners hear once per claim.
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


def _reader(board: ZooKeeperJobBoard, job_uuid: str, sequence: int) -> Any:
    """A kazoo completion callback: tell the cancel listeners of the cancel request in the job's record
    just read, once per claim, if the board still holds the job."""
    told = board._cancel_told

    def read(result: Any) -> None:
        try:
            data, _stat = result.get_nowait()
        except Exception:  # gone (consumed, moved) or the session ended
            return
        if not board._is_owned(job_uuid):
            return
        try:
            reason = Job.from_bytes(board, data, sequence).cancel_reason
        except MalformedJobError:
            return
        if reason and told.first(job_uuid):
            board._emit_cancel(job_uuid, reason)

    return read


def check(board: ZooKeeperJobBoard, job_uuid: str, sequence: int, path: str) -> None:
    """Read the held job's record (asynchronously) for a cancel request: the board's persistent watch
    said it changed. No watch is left: the board hears every change anyway."""
    board._client.get_async(path).rawlink(_reader(board, job_uuid, sequence))


def watch(board: ZooKeeperJobBoard, job: Job, path: str) -> None:
    """Watch the claimed job's node; tell the board's cancel listeners once when a cancel shows up.

    A plain data watch re-armed by asynchronous reads, not kazoo's ``DataWatch``: the claim does not
    wait for the first read (a round trip on every claim), and a node deleted by consume ends the
    watch at once, where ``DataWatch`` reads it again and leaves an ``exists`` watch on the server for
    a node that never comes back (two more requests per job, and a watch left behind per job).
    The first read is sent after the claim's transaction on the same connection, so it sees the record
    as claimed or newer: a cancel asked before the claim is heard the same way.
    """
    from kazoo.protocol.states import EventType

    job_uuid = job.uuid
    client = board._client
    read = _reader(board, job_uuid, job.sequence)

    def on_event(event: Any) -> None:
        if event.type == EventType.CHANGED and board._is_owned(job_uuid):
            client.get_async(path, watch=on_event).rawlink(read)

    client.get_async(path, watch=on_event).rawlink(read)
