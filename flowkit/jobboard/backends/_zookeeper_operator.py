"""The ZooKeeper board's operator verbs and its history of consumed jobs.

A consumed job leaves a copy of its record under ``history/`` (created in the consume's own
transaction, with who consumed it and when), kept for the board's retention (``?history=SECONDS``,
default a week; 0 keeps none) and purged at most once a minute by a consuming board. Requeue and
trash are single transactions: a job claimed meanwhile fails the transaction (trash creates and
deletes a claim node of its own in it, so an existing claim makes it fail) and is never moved under
its owner.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import MalformedJobError, NotFound
from flowkit.jobboard.job import Job
from flowkit.jobboard.listing import JobEntry
from flowkit.states import JobState, check_operator_transition

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

S = JobState
DEFAULT_HISTORY = 7 * 86400.0
PURGE_EVERY = 60.0
YOUNG_RUN = 20
"""A purge stops after this many recent history nodes in a row (see :func:`purge`)."""


def history_record(job: Job, who: str) -> bytes:
    record = job.to_record()
    record.update(moved_by=who, moved_on=time.time())
    return json.dumps(record).encode()


def _read_dir(board: ZooKeeperJobBoard, path: str, state: JobState) -> list[tuple[str, JobEntry]]:
    from kazoo.exceptions import NoNodeError

    out = []
    client = board._client
    for child in client.get_children(path):
        try:
            data, _ = client.get(f"{path}/{child}")
            record = json.loads(data.decode("utf-8"))
            job = Job.from_record(board, record, int(child[4:]))
        except NoNodeError:
            continue
        except (MalformedJobError, ValueError, UnicodeDecodeError) as exc:
            board._warn_bad(f"{path}/{child}", str(exc))
            continue
        moved_on = record.get("moved_on")
        when = float(moved_on) if isinstance(moved_on, int | float) else None
        by = record.get("moved_by") if isinstance(record.get("moved_by"), str) else None
        out.append((child, JobEntry(job, state, by, when)))
    return out


def finished_jobs(board: ZooKeeperJobBoard) -> list[JobEntry]:
    with board._errors("list the finished jobs"):
        entries = [e for _, e in _read_dir(board, board._history_path, S.COMPLETE)]
        entries += [e for _, e in _read_dir(board, board._trash_path, S.TRASHED)]
    return sorted(entries, key=lambda e: -(e.updated_on or 0.0))


def purge(board: ZooKeeperJobBoard, older_than: float) -> int:
    """Delete history nodes created more than ``older_than`` seconds ago.

    Nodes are visited oldest job first and the walk stops after :data:`YOUNG_RUN` recent ones in a
    row: jobs are consumed roughly in the order they were posted, so a purge reads about as many
    nodes as it deletes, not the whole history.
    """
    from kazoo.exceptions import NoNodeError

    cutoff_ms, count, young = (time.time() - older_than) * 1000, 0, 0
    with board._errors("purge the consumed jobs"):
        children = sorted(c for c in board._client.get_children(board._history_path) if c.startswith("job-"))
        for child in children:
            path = f"{board._history_path}/{child}"
            stat = board._client.exists(path)
            if stat is None:
                continue
            if stat.ctime > cutoff_ms:
                young += 1
                if young >= YOUNG_RUN:
                    break
                continue
            young = 0
            with contextlib.suppress(NoNodeError):
                board._client.delete(path)
                count += 1
    return count


def _where(board: ZooKeeperJobBoard, job: Job | str) -> tuple[Job, str, JobState]:
    """The job (as stored), its node name and its state now."""
    uuid = job if isinstance(job, str) else job.uuid
    found = board.get_job(uuid)
    node = f"job-{found.sequence:010d}"
    return found, node, board.state_of(found)


def requeue(board: ZooKeeperJobBoard, job: Job | str) -> Job:
    found, node, state = _where(board, job)
    check_operator_transition(found.uuid, state, S.UNCLAIMED)
    aside = f"{board._aside_path}/{node}"
    with board._errors(f"requeue job {found}"):
        data, stat = board._client.get(aside)
        record: dict[str, Any] = json.loads(data.decode("utf-8"))
        record["attempts"] = 0
        for key in ("moved_by", "moved_on"):
            record.pop(key, None)
        tx = board._client.transaction()
        tx.delete(aside, version=stat.version)
        tx.create(f"{board._jobs_path}/{node}", json.dumps(record).encode())
        _commit(board, tx, found, S.UNCLAIMED)
        board._refresh()
    return board.get_job(found.uuid)


def trash(board: ZooKeeperJobBoard, job: Job | str, reason: str | None) -> None:
    found, node, state = _where(board, job)
    check_operator_transition(found.uuid, state, S.TRASHED)
    source = board._aside_path if state is S.SET_ASIDE else board._jobs_path
    with board._errors(f"trash job {found}"):
        data, stat = board._client.get(f"{source}/{node}")
        record = json.loads(data.decode("utf-8"))
        if reason:
            record["last_reason"] = reason
        record.update(moved_by="operator", moved_on=time.time())
        tx = board._client.transaction()
        if source == board._jobs_path:  # fails if a claim exists: an owned job is not ours to move
            claim = f"{board._claims_path}/{node}"
            tx.create(claim, b"{}")
            tx.delete(claim)
        tx.delete(f"{source}/{node}", version=stat.version)
        tx.create(f"{board._trash_path}/{node}", json.dumps(record).encode())
        _commit(board, tx, found, S.TRASHED)
    board._copy.drop_removed(node)


def _commit(board: ZooKeeperJobBoard, tx: Any, job: Job, target: JobState) -> None:
    from flowkit.jobboard.backends import _zookeeper_claims as claims

    if claims.first_failure(list(tx.commit())) is not None:
        check_operator_transition(job.uuid, board.state_of(job), target)
        raise NotFound(f"job {job} changed while being moved to {target}; try again")
