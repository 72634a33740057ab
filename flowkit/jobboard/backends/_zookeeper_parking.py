"""The ZooKeeper board's parked jobs: a ``waiting/job-NNN`` node per parked job (its wake-up time and
events, :func:`waiting_data`), made by a park, deleted by the claim that ends the park (in the claim's
transaction) or by an event.

Apart from the board because these are that node's record and its three moves; the board delegates
to them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flowkit.exceptions import UnclaimableJobError
from flowkit.jobboard.backends import _zookeeper_moves as moves
from flowkit.jobboard.backends._zookeeper_nodes import node_of
from flowkit.jobboard.job import Job
from flowkit.states import JobState

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard


def waiting_data(wake_at: float | None, events: tuple[str, ...], who: str) -> bytes:
    """What a ``waiting`` node holds."""
    return json.dumps({"wake_at": wake_at, "events": list(events), "parked_by": who}).encode()


def parse_waiting(data: bytes) -> tuple[float | None, tuple[str, ...]]:
    """(wake-up time, events) of a ``waiting`` node; a node that cannot be read wakes at once."""
    try:
        record = json.loads(data.decode("utf-8"))
        wake_at = record.get("wake_at")
        events = tuple(str(e) for e in record.get("events") or ())
        return (None if wake_at is None else float(wake_at)), events
    except (UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return 0.0, ()


def due_version(board: ZooKeeperJobBoard, job: Job, node: str) -> int | None:
    """The version of the job's ``waiting`` node if it is parked and due (None: not parked);
    :class:`UnclaimableJobError` if it is parked and not due yet."""
    from kazoo.exceptions import NoNodeError

    try:
        data, stat = board._client.get(f"{board._waiting_path}/{node}")
    except NoNodeError:
        return None
    wake_at, events = parse_waiting(data)
    if wake_at is None or wake_at > time.time():
        with board._copy.lock:
            board._copy.waiting.setdefault(node, (wake_at, events))
        raise UnclaimableJobError(f"job {job} is parked (waiting for its time or {', '.join(events)})")
    return int(stat.version)


def due(board: ZooKeeperJobBoard, job: Job, node: str) -> tuple[int | None, int]:
    """What a claim of ``node`` must do about a park: (the ``waiting`` node's version to delete, -1 for
    any, or None when not parked; the changes heard to the job's record so far, see ``WatchedCopy``).

    Followed by persistent watches with no reconnect since its last listing (``trusted``), the copy
    knows of every park that wrote the record version the claim is checked against (the park's events
    came before the answer that gave that version), so only a park whose ``waiting`` node is not read
    yet costs a read here.
    """
    copy = board._copy
    with copy.lock:
        heard = copy.changes.get(node, 0)
        if not copy.trusted or node in copy.parking:
            known = None
        elif node in copy.waiting:
            known = copy.waiting[node]
        else:
            return None, heard
    if known is None:
        return due_version(board, job, node), heard
    wake_at, events = known
    if wake_at is None or wake_at > time.time():
        raise UnclaimableJobError(f"job {job} is parked (waiting for its time or {', '.join(events)})")
    return -1, heard


def park(
    board: ZooKeeperJobBoard, job: Job, who: str, wake_at: float | None, events: tuple[str, ...]
) -> None:
    """Move the owned job to WAITING: its ``waiting`` node made, its claim deleted, one attempt given
    back (a park is no failed attempt), in one transaction checked against the claim."""
    node = node_of(job)
    with board._errors(f"park job {job}"):
        path, claim, stat = moves.owned_claim(board, job, who, JobState.WAITING)
        data, job_stat = board._client.get(path)
        current = Job.from_bytes(board, data, job.sequence)
        current.attempts = max(0, current.attempts - 1)  # a park is no failed attempt
        tx = board._client.transaction()
        tx.check(claim, stat.version)
        tx.create(f"{board._waiting_path}/{node}", waiting_data(wake_at, events, who))
        tx.delete(claim)
        tx.set_data(path, current.to_bytes(), version=job_stat.version)
        moves.check(tx.commit(), job, who)
    board._copy.set_waiting(node, wake_at, events)
    job.attempts = current.attempts
    board._held.drop(job.uuid)


def wake_waiting(board: ZooKeeperJobBoard, names: Sequence[str]) -> int:
    """Delete the ``waiting`` node of every job awaiting one of ``names`` (read now, not from the copy
    alone): those jobs are claimable at once. Returns how many."""
    from kazoo.exceptions import NoNodeError

    wanted = set(names)
    with board._errors(f"wake the jobs waiting for {', '.join(names)}"):
        board._client.sync(board._waiting_path)
        children = board._client.get_children(board._waiting_path)
        with board._copy.lock:
            known = dict(board._copy.waiting)
        woken = 0
        for child in children:
            if child in known:
                events = known[child][1]
            else:
                try:
                    events = parse_waiting(board._client.get(f"{board._waiting_path}/{child}")[0])[1]
                except NoNodeError:
                    continue
            if wanted.intersection(events):
                with contextlib.suppress(NoNodeError):  # claimed or woken meanwhile
                    board._client.delete(f"{board._waiting_path}/{child}")
                    woken += 1
    return woken
