"""How the ZooKeeper board's copy follows persistent recursive watches (``_zookeeper_events``):
each event names the node created, deleted or changed, so a claim or a consume elsewhere costs this
board no request at all, and a posted job one read of its record.

A record changed elsewhere (a claim counting its attempt, an abandon, a cancel request) is only marked
*stale* (its version unknown): a claim reads it first, and ``refresh`` (``ensure_fresh``) reads it
again. Events are handled in the connection's thread, before any response that follows them, so a
board that acts on a job version it has read already knows of the ``waiting`` node of any park that
wrote that version. Handlers there touch dictionaries only and never wait: the reads an event calls
for are sent from kazoo's callback thread and answered asynchronously.

Apart from the copy (``_zookeeper_copy``) because this is one of its two ways of following the board;
the other, relisting a directory, is ``_zookeeper_listings``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import MalformedJobError
from flowkit.jobboard.backends import _zookeeper_events as zk_events
from flowkit.jobboard.backends._zookeeper_nodes import JOB_NODE
from flowkit.jobboard.backends._zookeeper_parking import parse_waiting
from flowkit.jobboard.job import Job

if TYPE_CHECKING:
    from flowkit.jobboard.backends._zookeeper_copy import WatchedCopy


def on_event(copy: WatchedCopy, kind: int, path: str) -> None:
    """Take in the event of a persistent watch on one of the copy's directories."""
    parent, _, node = path.rpartition("/")
    if not JOB_NODE.match(node):
        return  # a stray name: the listings warn about it
    read = False
    with copy.changed:
        if copy.touched is not None:
            copy.touched[(parent, node)] = kind != zk_events.DELETED
        if parent == copy.jobs_path:
            read = job_event(copy, kind, node)
        elif parent == copy.claims_path:
            if kind == zk_events.CREATED:
                copy.claimed.add(node)
            elif kind == zk_events.DELETED:
                copy.claimed.discard(node)
                if node in copy.jobs:  # an abandon or a park rewrote it: read it again
                    copy.versions[node] = None
                    copy.unread.add(node)
                    read = True
        elif parent == copy.waiting_path:
            if kind == zk_events.CREATED:
                copy.parking.add(node)
                read = True
            elif kind == zk_events.DELETED:
                copy.parking.discard(node)
                copy.waiting.pop(node, None)
        copy.changed.notify_all()
    if read:
        from kazoo.protocol.states import Callback

        copy.client.handler.dispatch_callback(Callback("watch", read_new, (copy,)))
    if kind == zk_events.CHANGED and parent == copy.jobs_path and copy.on_change is not None:
        copy.on_change(node)


def job_event(copy: WatchedCopy, kind: int, node: str) -> bool:
    """Take in an event on a job node (``lock`` held); True when a new record is to be read."""
    if kind == zk_events.CREATED:
        if node not in copy.jobs and node not in copy.skip:
            copy.unread.add(node)
            return True
    elif kind == zk_events.DELETED:
        copy.unread.discard(node)
        copy.asking.discard(node)
        copy.pending.discard(node)
        copy.changes.pop(node, None)
        if node in copy.jobs:
            copy.drop(node)
    elif kind == zk_events.CHANGED:
        copy.changes[node] = copy.changes.get(node, 0) + 1
        if node in copy.versions:
            copy.versions[node] = None
    return False


def read_new(copy: WatchedCopy) -> None:
    """Ask for the records of jobs and parked jobs that events announced (kazoo's callback thread:
    a board's own post usually lands first, and needs no read)."""
    with copy.lock:
        nodes, copy.unread = copy.unread, set()
        copy.asking |= nodes
        parked = [n for n in copy.parking if n not in copy.waiting]
    for node in nodes:
        copy.client.get_async(f"{copy.jobs_path}/{node}").rawlink(functools.partial(got, copy, node))
    for node in parked:
        parked_read = functools.partial(got_parked, copy, node)
        copy.client.get_async(f"{copy.waiting_path}/{node}").rawlink(parked_read)


def got(copy: WatchedCopy, node: str, result: Any) -> None:
    """A posted job's record, read: into the copy, unless the job went meanwhile."""
    try:
        data, stat = result.get_nowait()
    except Exception:  # gone meanwhile, or the connection dropped: the refresh after it reads it
        with copy.lock:
            copy.asking.discard(node)
        return
    try:
        job = Job.from_bytes(copy.board, data, int(node[4:]))
    except MalformedJobError as exc:
        with copy.lock:
            copy.asking.discard(node)
            copy.skip.add(node)
        copy.warn(f"{copy.jobs_path}/{node}", str(exc))
        return
    with copy.changed:
        if node in copy.asking:  # not deleted meanwhile
            copy.asking.discard(node)
            copy.put(node, job, stat.version)
            copy.changed.notify_all()


def got_parked(copy: WatchedCopy, node: str, result: Any) -> None:
    """A parked job's ``waiting`` node, read: its wake-up time and events into the copy."""
    try:
        data, _ = result.get_nowait()
    except Exception:
        return  # woken (deleted) meanwhile, or the refresh after reconnecting reads it
    with copy.changed:
        if node in copy.parking:
            copy.waiting[node] = parse_waiting(data)
            copy.parking.discard(node)
            copy.changed.notify_all()
