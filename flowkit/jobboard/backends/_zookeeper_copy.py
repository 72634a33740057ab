"""The ZooKeeper board's copy of its ``jobs``, ``claims`` and ``waiting`` directories, kept current by
watches.

Why a copy: listings and ``wait()`` are served from memory and woken by the watches, so nothing polls.
Why separate directories: claims come and go with every job; in a directory of their own, their
changes never touch ``jobs`` (which may hold thousands). The copy is kept in board order, so claiming
the next job never sorts the board.

Parked jobs (durable waits) have a node in ``waiting``, holding their wake-up time and awaited events
(:attr:`WatchedCopy.waiting`). Such a job is not claimable until its time (:meth:`WatchedCopy.listing`
is given the time) or until an event deletes its node.

How the copy follows the board: on ZooKeeper 3.6+ by persistent recursive watches on the three
directories, whose events name each node created, deleted or changed (``_zookeeper_copy_events``);
older servers get one-shot children watches, each firing a relisting (``_zookeeper_listings``), and
every board relists after a reconnect (:meth:`WatchedCopy.refresh`). This module holds the copy's state,
its life cycle, what the board itself writes into it, and the reads the board serves from it.

Why the board's own posts go straight in (:meth:`WatchedCopy.add_posted`): the watch reports a post
only after a round trip of its own, so a board that counted or listed right after posting missed the
job it had just posted. A job put in that way is *pending* until a listing shows it.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import MalformedJobError
from flowkit.jobboard.backends import _zookeeper_copy_events as copy_events
from flowkit.jobboard.backends import _zookeeper_events as zk_events
from flowkit.jobboard.backends import _zookeeper_listings as listings
from flowkit.jobboard.job import Job

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard


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
        self.warn = warn
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
        self.skip: set[str] = set()  # malformed or stray names: warned about once, never fetched again
        self.pending: set[str] = set()  # this board's posts no listing has shown yet
        self.listed_upto = ""  # the highest job node any listing has shown (names sort by number)
        self._stopped = False
        self.events = False
        """Whether persistent watches keep the copy current (else children watches relist)."""
        self._timeout = 10.0  # how long adding a watch may take (the session timeout)
        self._epoch = 0  # connections dropped so far (each makes the server forget the watches)
        self._armed = -1  # the epoch the watches were last added in
        self.touched: dict[tuple[str, str], bool] | None = None
        """While a refresh lists (event mode): (directory, node) -> whether the last event heard on it
        left the node there. Those nodes are as the events say, whatever the listing read before."""
        self.trusted = False
        """Event mode, and the copy heard every change since its last listing (no reconnect since)."""
        self.changes: dict[str, int] = {}
        """Job node -> how many changes of its record were heard (event mode): a claimant tells from it
        whether anything but its own claim wrote the record since it read it (a cancel request)."""
        self.on_change: Callable[[str], None] | None = None
        """Told (in the connection thread) of each change heard to a job's record (event mode)."""
        self.unread: set[str] = set()  # posted (an event said so), record not asked for yet
        self.asking: set[str] = set()  # record asked for, not answered yet
        self.parking: set[str] = set()
        """Parked jobs whose ``waiting`` node is not read yet: claimable at no time until it is."""
        self._on_event = functools.partial(copy_events.on_event, self)  # one object: route, unroute

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
        ChildrenWatch(client, self.jobs_path, self._following(listings.update_jobs), allow_session_lost=True)
        ChildrenWatch(
            client, self.claims_path, self._following(listings.update_claims), allow_session_lost=True
        )
        if self.waiting_path:
            waiting = self._following(listings.update_waiting)
            ChildrenWatch(client, self.waiting_path, waiting, allow_session_lost=True)

    def stop(self) -> None:
        self._stopped = True
        if self.client is not None:  # (unrouting what is not routed does nothing)
            for path in self._paths():
                zk_events.unroute(self.client, path, self._on_event)
        with self.changed:
            self.jobs.clear()
            self.versions.clear()
            self.order.clear()
            self.claimed.clear()
            self.waiting.clear()
            self.pending.clear()
            self.listed_upto = ""
            self.changes.clear()
            self.unread.clear()
            self.asking.clear()
            self.parking.clear()
            self.changed.notify_all()

    def _following(self, update: Callable[[WatchedCopy, list[str]], None]) -> Callable[[list[str]], bool]:
        """A children watch's function: take in each listing by ``update`` until the copy stops."""

        def on_children(children: list[str]) -> bool:
            if self._stopped:
                return False
            update(self, children)
            return True

        return on_children

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
                    self.touched = {}
            try:
                self._relist(epoch)
            finally:
                with self.lock:
                    self.touched = None

    def _relist(self, epoch: int) -> None:
        """The listing part of :meth:`refresh` (``_updating`` held)."""
        self.client.sync(self.jobs_path)
        listings.update_jobs(self, self.client.get_children(self.jobs_path))
        listings.update_claims(self, self.client.get_children(self.claims_path))
        if self.waiting_path:
            listings.update_waiting(self, self.client.get_children(self.waiting_path))
        if self.events:
            with self.lock:
                stale = [n for n, v in self.versions.items() if v is None]
            fetched = listings.fetch(self, stale)
            with self.changed:
                for node, (job, version) in fetched.items():
                    if node in self.jobs:
                        self.put(node, job, version)
                self.trusted = self._epoch == epoch == self._armed

    def disconnected(self) -> None:
        """The connection dropped: changes go unheard until the next refresh adds the persistent
        watches again and relists (the board refreshes on reconnecting)."""
        with self.lock:
            self._epoch += 1
            self.trusted = False

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
            self.unread.discard(node)  # announced by its event, not asked for yet: no read needed
            if node <= self.listed_upto:
                return
            if node not in self.jobs:  # (an event's read may have put it already)
                self.put(node, job, 0)  # a znode's data version is 0 when it is created
            self.pending.add(node)
            self.changed.notify_all()

    def drop_removed(self, node: str) -> None:
        """Take out a job this board has just removed itself (consumed, trashed, set aside), so its own
        counts and listings agree with what it did at once, as they do after its own post. A listing
        read before the removal cannot bring it back: fetching a deleted node finds nothing."""
        with self.changed:
            if node in self.jobs:
                self.drop(node)
            self.pending.discard(node)
            self.claimed.discard(node)
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

    def replace(self, node: str, job: Job, version: int) -> None:
        """This board rewrote the record of a job the copy holds (a cancel): keep the copy current."""
        with self.changed:
            if node in self.jobs:
                self.jobs[node], self.versions[node] = job, version

    def put(self, node: str, job: Job, version: int) -> None:
        if node not in self.jobs:
            bisect.insort(self.order, (-job.priority, job.sequence, node))
        self.jobs[node], self.versions[node] = job, version

    def drop(self, node: str) -> None:
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
