"""The ZooKeeper board's copy of its ``jobs`` and ``claims`` directories, kept current by two watches.

Why a copy: listings and ``wait()`` are served from memory and woken by the watches, so nothing polls.
Why two directories: claims come and go with every job; in a directory of their own, their watch
relists a handful of names, and the ``jobs`` directory (which may hold thousands) is relisted only when
a job is posted or leaves. Each listing is diffed against the copy with set operations, so an event
does not cost a pass over every job in Python, and the copy is kept in board order, so claiming the
next job never sorts the board.

Parked jobs (durable waits) have a node in a third directory, ``waiting``, holding their wake-up time
and awaited events; a third watch keeps :attr:`WatchedCopy.waiting` current. Such a job is not
claimable until its time (:meth:`WatchedCopy.listing` is given the time) or until an event deletes
its node.

How the copy follows the board: on ZooKeeper 3.6+ by persistent recursive watches on the three
directories (``_zookeeper_events``): each event names the node created, deleted or changed, so a claim
or a consume elsewhere costs this board no request at all, and a posted job one read of its record.
A record changed elsewhere (a claim counting its attempt, an abandon, a cancel request) is only marked
*stale* (its version unknown): a claim reads it first, and ``refresh`` (``ensure_fresh``) reads it
again. Events are handled in the connection's thread, before any response that follows them, so a
board that acts on a job version it has read already knows of the ``waiting`` node of any park that
wrote that version. Older servers get the one-shot children watches, each firing a relisting.

Why the board's own posts go straight in (:meth:`WatchedCopy.add_posted`): the watch reports a post
only after a round trip of its own, so a board that counted or listed right after posting missed the
job it had just posted. A job put in that way is *pending* until a listing shows it; a listing that
lacks it may have been read before the post (a watch lags), so it is dropped only once ZooKeeper says
the node is gone.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import MalformedJobError
from flowkit.jobboard.backends import _zookeeper_events as zk_events
from flowkit.jobboard.job import Job

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard

LOG = logging.getLogger("flowkit.jobboard")

JOB_NODE = re.compile(r"^job-(\d{10})$")


class WatchedCopy:
    """Jobs by node name, their znode versions, board order, and which nodes are claimed."""

    def __init__(
        self,
        board: JobBoard,
        jobs_path: str,
        claims_path: str,
        warn: Callable[[str, str], None],
        waiting_path: str = "",
    ) -> None:
        self.board = board
        self.jobs_path = jobs_path
        self.claims_path = claims_path
        self.waiting_path = waiting_path
        self._warn = warn
        self.client: Any = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        """Notified whenever the copy changes (and on connection changes, by the board)."""
        self._updating = threading.RLock()  # watch callbacks and explicit refreshes, one at a time
        self.jobs: dict[str, Job] = {}
        self.versions: dict[str, int | None] = {}
        """Znode version of each record in the copy; None: changed since (read it before relying on it)."""
        self.order: list[tuple[int, int, str]] = []  # (-priority, sequence, node), sorted
        self.claimed: set[str] = set()
        self.waiting: dict[str, tuple[float | None, tuple[str, ...]]] = {}
        """Parked jobs by node name: (wake-up time or None, awaited events)."""
        self._skip: set[str] = set()  # malformed or stray names: warned about once, never fetched again
        self._pending: set[str] = set()  # this board's posts no listing has shown yet
        self._listed_upto = ""  # the highest job node any listing has shown (names sort by number)
        self._stopped = False
        self.events = False
        """Whether persistent watches keep the copy current (else children watches relist)."""
        self._timeout = 10.0  # how long adding a watch may take (the session timeout)
        self._epoch = 0  # connections dropped so far (each makes the server forget the watches)
        self._armed = -1  # the epoch the watches were last added in
        self._touched: dict[tuple[str, str], bool] | None = None
        """While a refresh lists (event mode): (directory, node) -> whether the last event heard on it
        left the node there. Those nodes are as the events say, whatever the listing read before."""
        self.trusted = False
        """Event mode, and the copy heard every change since its last listing (no reconnect since)."""
        self.changes: dict[str, int] = {}
        """Job node -> how many changes of its record were heard (event mode): a claimant tells from it
        whether anything but its own claim wrote the record since it read it (a cancel request)."""
        self.on_change: Callable[[str], None] | None = None
        """Told (in the connection thread) of each change heard to a job's record (event mode)."""
        self._unread: set[str] = set()  # posted (an event said so), record not asked for yet
        self._asking: set[str] = set()  # record asked for, not answered yet
        self.parking: set[str] = set()
        """Parked jobs whose ``waiting`` node is not read yet: claimable at no time until it is."""

    # -- life cycle ---------------------------------------------------------------------------------

    def _paths(self) -> tuple[str, ...]:
        return (
            (self.jobs_path, self.claims_path, self.waiting_path)
            if self.waiting_path
            else (
                self.jobs_path,
                self.claims_path,
            )
        )

    def start(self, client: Any, timeout: float) -> None:
        """Follow the board: persistent watches and one listing, or the children watches."""
        from kazoo.recipe.watchers import ChildrenWatch

        self.client, self._stopped = client, False
        for path in self._paths():
            zk_events.route(client, path, self._on_event)
        if all(zk_events.add_watch(client, path, timeout) for path in self._paths()):
            self.events, self._timeout, self._armed = True, timeout, self._epoch
            self.refresh()
            return
        for path in self._paths():
            zk_events.unroute(client, path, self._on_event)
        ChildrenWatch(client, self.jobs_path, self._on_jobs, allow_session_lost=True)
        ChildrenWatch(client, self.claims_path, self._on_claims, allow_session_lost=True)
        if self.waiting_path:
            ChildrenWatch(client, self.waiting_path, self._on_waiting, allow_session_lost=True)

    def stop(self) -> None:
        self._stopped = True
        if self.events and self.client is not None:
            for path in self._paths():
                zk_events.unroute(self.client, path, self._on_event)
        with self.changed:
            self.jobs.clear()
            self.versions.clear()
            self.order.clear()
            self.claimed.clear()
            self.waiting.clear()
            self._pending.clear()
            self._listed_upto = ""
            self.changes.clear()
            self._unread.clear()
            self._asking.clear()
            self.parking.clear()
            self.changed.notify_all()

    def _on_jobs(self, children: list[str]) -> bool:
        if self._stopped:
            return False
        self.update_jobs(children)
        return True

    def _on_claims(self, children: list[str]) -> bool:
        if self._stopped:
            return False
        self.update_claims(children)
        return True

    def _on_waiting(self, children: list[str]) -> bool:
        if self._stopped:
            return False
        self.update_waiting(children)
        return True

    def refresh(self) -> None:
        """Relist both directories now (``ensure_fresh``, and after a reconnect: events were missed).

        ``sync`` first: the server this session talks to may be a follower behind the leader, and a
        fresh listing must show what other clients committed before it was asked for. Callers that
        read the copy afterwards hold :attr:`updating` across both, so no older watch listing lands
        in between.
        """
        with self._updating:
            with self.lock:
                epoch = self._epoch
            if self.events and self._armed != epoch:  # first the watches, then the listing
                for path in self._paths():
                    zk_events.add_watch(self.client, path, self._timeout)
                self._armed = epoch
            if self.events:
                with self.lock:
                    self._touched = {}
            try:
                self._relist(epoch)
            finally:
                with self.lock:
                    self._touched = None

    def _relist(self, epoch: int) -> None:
        """The listing part of :meth:`refresh` (``_updating`` held)."""
        self.client.sync(self.jobs_path)
        self.update_jobs(self.client.get_children(self.jobs_path))
        self.update_claims(self.client.get_children(self.claims_path))
        if self.waiting_path:
            self.update_waiting(self.client.get_children(self.waiting_path))
        if self.events:
            with self.lock:
                stale = [n for n, v in self.versions.items() if v is None]
            fetched = self._fetch(stale)
            with self.changed:
                for node, (job, version) in fetched.items():
                    if node in self.jobs:
                        self._put(node, job, version)
                self.trusted = self._epoch == epoch == self._armed

    def disconnected(self) -> None:
        """The connection dropped: changes go unheard until the next refresh adds the persistent
        watches again and relists (the board refreshes on reconnecting)."""
        with self.lock:
            self._epoch += 1
            self.trusted = False

    # -- events (the connection's thread: dictionaries only, no waiting) ---------------------------------

    def _on_event(self, kind: int, path: str) -> None:
        parent, _, node = path.rpartition("/")
        if not JOB_NODE.match(node):
            return  # a stray name: the listings warn about it
        read = False
        with self.changed:
            if self._touched is not None:
                self._touched[(parent, node)] = kind != zk_events.DELETED
            if parent == self.jobs_path:
                read = self._job_event(kind, node)
            elif parent == self.claims_path:
                if kind == zk_events.CREATED:
                    self.claimed.add(node)
                elif kind == zk_events.DELETED:
                    self.claimed.discard(node)
                    if node in self.jobs:  # an abandon or a park rewrote it: read it again
                        self.versions[node] = None
                        self._unread.add(node)
                        read = True
            elif parent == self.waiting_path:
                if kind == zk_events.CREATED:
                    self.parking.add(node)
                    read = True
                elif kind == zk_events.DELETED:
                    self.parking.discard(node)
                    self.waiting.pop(node, None)
            self.changed.notify_all()
        if read:
            from kazoo.protocol.states import Callback

            self.client.handler.dispatch_callback(Callback("watch", self._read_new, ()))
        if kind == zk_events.CHANGED and parent == self.jobs_path and self.on_change is not None:
            self.on_change(node)

    def _job_event(self, kind: int, node: str) -> bool:
        """Take in an event on a job node (``lock`` held); True when a new record is to be read."""
        if kind == zk_events.CREATED:
            if node not in self.jobs and node not in self._skip:
                self._unread.add(node)
                return True
        elif kind == zk_events.DELETED:
            self._unread.discard(node)
            self._asking.discard(node)
            self._pending.discard(node)
            self.changes.pop(node, None)
            if node in self.jobs:
                self._drop(node)
        elif kind == zk_events.CHANGED:
            self.changes[node] = self.changes.get(node, 0) + 1
            if node in self.versions:
                self.versions[node] = None
        return False

    def _read_new(self) -> None:
        """Ask for the records of jobs and parked jobs that events announced (kazoo's callback thread:
        a board's own post usually lands first, and needs no read)."""
        with self.lock:
            nodes, self._unread = self._unread, set()
            self._asking |= nodes
            parked = [n for n in self.parking if n not in self.waiting]
        for node in nodes:
            self.client.get_async(f"{self.jobs_path}/{node}").rawlink(functools.partial(self._got, node))
        for node in parked:
            parked_read = functools.partial(self._got_parked, node)
            self.client.get_async(f"{self.waiting_path}/{node}").rawlink(parked_read)

    def _got(self, node: str, result: Any) -> None:
        try:
            data, stat = result.get_nowait()
        except Exception:  # gone meanwhile, or the connection dropped: the refresh after it reads it
            with self.lock:
                self._asking.discard(node)
            return
        try:
            job = Job.from_bytes(self.board, data, int(node[4:]))
        except MalformedJobError as exc:
            with self.lock:
                self._asking.discard(node)
                self._skip.add(node)
            self._warn(f"{self.jobs_path}/{node}", str(exc))
            return
        with self.changed:
            if node in self._asking:  # not deleted meanwhile
                self._asking.discard(node)
                self._put(node, job, stat.version)
                self.changed.notify_all()

    def _got_parked(self, node: str, result: Any) -> None:
        try:
            data, _ = result.get_nowait()
        except Exception:
            return  # woken (deleted) meanwhile, or the refresh after reconnecting reads it
        with self.changed:
            if node in self.parking:
                self.waiting[node] = parse_waiting(data)
                self.parking.discard(node)
                self.changed.notify_all()

    @property
    def updating(self) -> threading.RLock:
        """Held while the copy is being rewritten from a listing (re-entrant)."""
        return self._updating

    def add_posted(self, node: str, data: bytes) -> None:
        """Put a job this board has just created in the copy, before any watch reports it.

        Not when a listing has already shown a later node: that listing was read after this post, so
        it already put the job in, or the job was gone by then and must not come back.
        """
        try:
            job = Job.from_bytes(self.board, data, int(node[4:]))
        except MalformedJobError:
            return  # posting checked it; a listing will skip it with a warning if it is somehow bad
        with self.changed:
            self._unread.discard(node)  # announced by its event, not asked for yet: no read needed
            if node <= self._listed_upto:
                return
            if node not in self.jobs:  # (an event's read may have put it already)
                self._put(node, job, 0)  # a znode's data version is 0 when it is created
            self._pending.add(node)
            self.changed.notify_all()

    def drop_removed(self, node: str) -> None:
        """Take out a job this board has just removed itself (consumed, trashed, set aside), so its own
        counts and listings agree with what it did at once, as they do after its own post. A listing
        read before the removal cannot bring it back: fetching a deleted node finds nothing."""
        with self.changed:
            if node in self.jobs:
                self._drop(node)
            self._pending.discard(node)
            self.claimed.discard(node)
            self.changed.notify_all()

    # -- updates --------------------------------------------------------------------------------------

    def update_jobs(self, children: Iterable[str]) -> None:
        with self._updating:
            listed = set(children)
            with self.lock:
                added = listed - self.jobs.keys() - self._skip
                removed = self.jobs.keys() - listed
                seen, unseen = self._pending & listed, self._pending & removed
                self._pending -= seen
            removed -= self._still_there(unseen)
            new = []
            for child in added:
                if JOB_NODE.match(child):
                    new.append(child)
                else:
                    self._skip.add(child)
                    self._warn(f"{self.jobs_path}/{child}", "not a job node name")
            fetched = self._fetch(new)
            with self.changed:
                for node in removed:
                    if node in self.jobs and self._heard(self.jobs_path, node) is not True:
                        self._drop(node)
                for node, (job, version) in fetched.items():
                    if self._heard(self.jobs_path, node) is not False:  # not deleted since
                        self._put(node, job, version)
                self._skip &= listed
                self._pending -= removed
                # Set with the jobs it covers, never before them: add_posted reads the two together.
                self._listed_upto = max([self._listed_upto, *new, *seen])
                self.changed.notify_all()

    def update_claims(self, children: Iterable[str]) -> None:
        with self._updating:
            claimed = set()
            for child in children:
                if JOB_NODE.match(child):
                    claimed.add(child)
                else:
                    self._warn(f"{self.claims_path}/{child}", "not a claim node name")
            with self.lock:
                released = [n for n in self.claimed - claimed if n in self.jobs]
                if self.events:  # read by the refresh that listed them, or by a claim: not here
                    for node in released:
                        self.versions[node] = None
                    released = []
            fetched = self._fetch(released)  # an abandon rewrote them (attempts, reason)
            with self.changed:
                if self._touched is not None:  # claims made or gone since the listing
                    for (where, node), there in self._touched.items():
                        if where == self.claims_path:
                            (claimed.add if there else claimed.discard)(node)
                self.claimed = claimed
                for node, (job, version) in fetched.items():
                    if node in self.jobs:
                        self._put(node, job, version)
                self.changed.notify_all()

    def update_waiting(self, children: Iterable[str]) -> None:
        """Take in a listing of ``waiting``: read the nodes that are new (their data never changes: a
        park creates one, a claim or an event deletes it)."""
        from kazoo.exceptions import KazooException, NoNodeError

        with self._updating:
            listed = {c for c in children if JOB_NODE.match(c)}
            with self.lock:
                new = listed - self.waiting.keys()
            asked = {n: self.client.get_async(f"{self.waiting_path}/{n}") for n in new}
            read: dict[str, tuple[float | None, tuple[str, ...]]] = {}
            for node, result in asked.items():
                try:
                    data, _ = result.get()
                except NoNodeError:
                    continue
                except KazooException as exc:
                    LOG.info("board %r: could not read parked job %s: %r", self.board.name, node, exc)
                    continue
                read[node] = parse_waiting(data)
            with self.changed:
                for node in self.waiting.keys() - listed:
                    if self._heard(self.waiting_path, node) is not True:
                        del self.waiting[node]
                for node, parked in read.items():
                    if self._heard(self.waiting_path, node) is not False:
                        self.waiting[node] = parked
                self.parking -= read.keys() | {
                    n for n in self.parking - listed if self._heard(self.waiting_path, n) is not True
                }
                self.changed.notify_all()

    def set_waiting(self, node: str, wake_at: float | None, events: tuple[str, ...]) -> None:
        """This board has just parked ``node``: show it at once (as :meth:`add_posted` does for posts)."""
        with self.changed:
            self.waiting[node] = (wake_at, events)
            self.parking.discard(node)
            self.changed.notify_all()

    def next_wake(self) -> float | None:
        """The earliest wake-up time of a parked job (callers hold ``lock``)."""
        return min((w for w, _ in self.waiting.values() if w is not None), default=None)

    def _heard(self, directory: str, node: str) -> bool | None:
        """Whether the events heard during the current refresh left ``node`` there (None: none heard)."""
        return None if self._touched is None else self._touched.get((directory, node))

    def _still_there(self, pending: set[str]) -> set[str]:
        """Of the pending posts a listing lacks, those still there (the listing was older than them).

        Rare (a watch listing read just before a post, or a post consumed elsewhere before any
        listing showed it), so one round of reads is fine.
        """
        from kazoo.exceptions import KazooException

        if not pending:
            return set()
        asked = {n: self.client.exists_async(f"{self.jobs_path}/{n}") for n in pending}
        kept = set()
        for node, result in asked.items():
            try:
                if result.get() is not None:
                    kept.add(node)
            except KazooException:  # keep it for now; the next listing asks again
                kept.add(node)
        return kept

    def _fetch(self, nodes: list[str]) -> dict[str, tuple[Job, int]]:
        from kazoo.exceptions import KazooException, NoNodeError

        pending = {n: self.client.get_async(f"{self.jobs_path}/{n}") for n in nodes}
        out = {}
        for node, result in pending.items():
            path = f"{self.jobs_path}/{node}"
            try:
                data, stat = result.get()
            except NoNodeError:
                continue
            except KazooException as exc:  # connection trouble: the refresh after reconnecting gets it
                LOG.info("board %r: could not read %s: %r", self.board.name, path, exc)
                continue
            try:
                out[node] = (Job.from_bytes(self.board, data, int(node[4:])), stat.version)
            except MalformedJobError as exc:
                self._skip.add(node)
                self._warn(path, str(exc))
        return out

    def replace(self, node: str, job: Job, version: int) -> None:
        """This board rewrote the record of a job the copy holds (a cancel): keep the copy current."""
        with self.changed:
            if node in self.jobs:
                self.jobs[node], self.versions[node] = job, version

    def _put(self, node: str, job: Job, version: int) -> None:
        if node not in self.jobs:
            bisect.insort(self.order, (-job.priority, job.sequence, node))
        self.jobs[node], self.versions[node] = job, version

    def _drop(self, node: str) -> None:
        job = self.jobs.pop(node)
        self.versions.pop(node, None)
        self.changes.pop(node, None)
        key = (-job.priority, job.sequence, node)
        i = bisect.bisect_left(self.order, key)
        if i < len(self.order) and self.order[i] == key:
            del self.order[i]

    # -- reading (callers hold ``lock``) ---------------------------------------------------------------

    def listing(self, only_unclaimed: bool, now: float = 0.0) -> list[Job]:
        """The jobs in board order; ``only_unclaimed``: those claimable at ``now`` (epoch seconds)."""
        jobs = self.jobs
        if not only_unclaimed:
            return [jobs[n] for _, _, n in self.order]
        return [jobs[n] for _, _, n in self.order if self._claimable(n, now)]

    def head(self, limit: int, now: float) -> list[Job]:
        """The first ``limit`` jobs claimable at ``now``, of the highest priority among them: read from
        the head of the board, not by listing it all."""
        out: list[Job] = []
        top = 0
        for priority, _, node in self.order:
            if self._claimable(node, now):
                if out and priority != top:
                    break
                top = priority
                out.append(self.jobs[node])
                if len(out) >= limit:
                    break
        return out

    def count(self, only_unclaimed: bool, now: float = 0.0) -> int:
        if only_unclaimed:
            return sum(1 for n in self.jobs if self._claimable(n, now))
        return len(self.jobs)

    def _claimable(self, node: str, now: float) -> bool:
        if node in self.claimed or node in self.parking:
            return False
        parked = self.waiting.get(node)
        return parked is None or (parked[0] is not None and parked[0] <= now)


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
