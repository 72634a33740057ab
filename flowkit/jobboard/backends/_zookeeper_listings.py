"""How the ZooKeeper board's copy takes in a listing of one of its directories: after a reconnect and
for ``ensure_fresh`` (events were missed, or may have been), and on servers before ZooKeeper 3.6, whose
one-shot children watches fire a relisting on each change.

Each listing is diffed against the copy with set operations, so an event does not cost a pass over
every job in Python. A refresh that lists while persistent watches report (``WatchedCopy.touched``)
lets the events heard meanwhile win over the listing, which may have been read before them.

Why the board's own posts are *pending* (``WatchedCopy.add_posted``): a listing that lacks one may have
been read before the post (a watch lags), so it is dropped only once ZooKeeper says the node is gone.

Apart from the copy (``_zookeeper_copy``) because this is one of its two ways of following the board;
the other, persistent watches' events, is ``_zookeeper_copy_events``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flowkit.exceptions import MalformedJobError
from flowkit.jobboard.backends._zookeeper_nodes import JOB_NODE
from flowkit.jobboard.backends._zookeeper_parking import parse_waiting
from flowkit.jobboard.job import Job

if TYPE_CHECKING:
    from flowkit.jobboard.backends._zookeeper_copy import WatchedCopy

LOG = logging.getLogger("flowkit.jobboard")


def update_jobs(copy: WatchedCopy, children: Iterable[str]) -> None:
    """Take in a listing of ``jobs``: read the records of jobs new to the copy, drop those gone."""
    with copy.updating:
        listed = set(children)
        with copy.lock:
            added = listed - copy.jobs.keys() - copy.skip
            removed = copy.jobs.keys() - listed
            seen, unseen = copy.pending & listed, copy.pending & removed
            copy.pending -= seen
        removed -= still_there(copy, unseen)
        new = []
        for child in added:
            if JOB_NODE.match(child):
                new.append(child)
            else:
                copy.skip.add(child)
                copy.warn(f"{copy.jobs_path}/{child}", "not a job node name")
        fetched = fetch(copy, new)
        with copy.changed:
            for node in removed:
                if node in copy.jobs and heard(copy, copy.jobs_path, node) is not True:
                    copy.drop(node)
            for node, (job, version) in fetched.items():
                if heard(copy, copy.jobs_path, node) is not False:  # not deleted since
                    copy.put(node, job, version)
            copy.skip &= listed
            copy.pending -= removed
            # Set with the jobs it covers, never before them: add_posted reads the two together.
            copy.listed_upto = max([copy.listed_upto, *new, *seen])
            copy.changed.notify_all()


def update_claims(copy: WatchedCopy, children: Iterable[str]) -> None:
    """Take in a listing of ``claims``; a claim gone means its record was rewritten (read it again)."""
    with copy.updating:
        claimed = set()
        for child in children:
            if JOB_NODE.match(child):
                claimed.add(child)
            else:
                copy.warn(f"{copy.claims_path}/{child}", "not a claim node name")
        with copy.lock:
            released = [n for n in copy.claimed - claimed if n in copy.jobs]
            if copy.events:  # read by the refresh that listed them, or by a claim: not here
                for node in released:
                    copy.versions[node] = None
                released = []
        fetched = fetch(copy, released)  # an abandon rewrote them (attempts, reason)
        with copy.changed:
            if copy.touched is not None:  # claims made or gone since the listing
                for (where, node), there in copy.touched.items():
                    if where == copy.claims_path:
                        (claimed.add if there else claimed.discard)(node)
            copy.claimed = claimed
            for node, (job, version) in fetched.items():
                if node in copy.jobs:
                    copy.put(node, job, version)
            copy.changed.notify_all()


def update_waiting(copy: WatchedCopy, children: Iterable[str]) -> None:
    """Take in a listing of ``waiting``: read the nodes that are new (their data never changes: a
    park creates one, a claim or an event deletes it)."""
    from kazoo.exceptions import KazooException, NoNodeError

    with copy.updating:
        listed = {c for c in children if JOB_NODE.match(c)}
        with copy.lock:
            new = listed - copy.waiting.keys()
        asked = {n: copy.client.get_async(f"{copy.waiting_path}/{n}") for n in new}
        read: dict[str, tuple[float | None, tuple[str, ...]]] = {}
        for node, result in asked.items():
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            except KazooException as exc:
                LOG.info("board %r: could not read parked job %s: %r", copy.board.name, node, exc)
                continue
            read[node] = parse_waiting(data)
        with copy.changed:
            for node in copy.waiting.keys() - listed:
                if heard(copy, copy.waiting_path, node) is not True:
                    del copy.waiting[node]
            for node, parked in read.items():
                if heard(copy, copy.waiting_path, node) is not False:
                    copy.waiting[node] = parked
            copy.parking -= read.keys() | {
                n for n in copy.parking - listed if heard(copy, copy.waiting_path, n) is not True
            }
            copy.changed.notify_all()


def heard(copy: WatchedCopy, directory: str, node: str) -> bool | None:
    """Whether the events heard during the current refresh left ``node`` there (None: none heard)."""
    return None if copy.touched is None else copy.touched.get((directory, node))


def still_there(copy: WatchedCopy, pending: set[str]) -> set[str]:
    """Of the pending posts a listing lacks, those still there (the listing was older than them).

    Rare (a watch listing read just before a post, or a post consumed elsewhere before any
    listing showed it), so one round of reads is fine.
    """
    from kazoo.exceptions import KazooException

    if not pending:
        return set()
    asked = {n: copy.client.exists_async(f"{copy.jobs_path}/{n}") for n in pending}
    kept = set()
    for node, result in asked.items():
        try:
            if result.get() is not None:
                kept.add(node)
        except KazooException:  # keep it for now; the next listing asks again
            kept.add(node)
    return kept


def fetch(copy: WatchedCopy, nodes: list[str]) -> dict[str, tuple[Job, int]]:
    """The records and versions of ``nodes``, read in one round of asynchronous requests."""
    from kazoo.exceptions import KazooException, NoNodeError

    pending = {n: copy.client.get_async(f"{copy.jobs_path}/{n}") for n in nodes}
    out = {}
    for node, result in pending.items():
        path = f"{copy.jobs_path}/{node}"
        try:
            data, stat = result.get()
        except NoNodeError:
            continue
        except KazooException as exc:  # connection trouble: the refresh after reconnecting gets it
            LOG.info("board %r: could not read %s: %r", copy.board.name, path, exc)
            continue
        try:
            out[node] = (Job.from_bytes(copy.board, data, int(node[4:])), stat.version)
        except MalformedJobError as exc:
            copy.skip.add(node)
            copy.warn(path, str(exc))
    return out
