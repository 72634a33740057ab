"""What an engine knows about the workers: who serves which task on which topic, and who is still alive.

Workers announce themselves with ``notify`` messages: every heartbeat on a fanout exchange, and at once
when an engine asks (``discover``). Any message from a worker counts as a sign of life. A worker that has
been silent for :data:`MISSED_BEATS` of its own heartbeat periods is dead: the engine stops routing to it
and fails what it was running, instead of waiting forever as TaskFlow does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MISSED_BEATS = 3.0
RECONNECT_GRACE_S = 5.0
"""After the engine's own connection comes back, how long workers have to come back too before their
silence counts: they reconnect on their own schedule (with back-off), often a second or two later."""


@dataclass
class WorkerInfo:
    """One worker, as its last ``notify`` described it."""

    id: str
    topic: str
    tasks: frozenset[str]
    threads: int
    heartbeat: float
    running: frozenset[str] = frozenset()
    stuck: int = 0
    """Threads held by calls it abandoned after their timeout (they cannot be killed)."""
    async_slots: int = 0
    """Async requests it takes besides its threads (on its event loop)."""
    batch: int = 0
    """The most requests it takes in one ``requests`` message; 0: it takes single requests only."""
    last_seen: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` of its last message, in this process's clock."""
    excused_until: float = 0.0
    """Alive whatever its silence until then (see :meth:`Registry.forgive`)."""

    def alive(self, now: float, limit: float) -> bool:
        """Heard from within ``MISSED_BEATS`` heartbeats (and within ``limit`` seconds)."""
        if now <= self.excused_until:
            return True
        return now - self.last_seen <= min(limit, MISSED_BEATS * self.heartbeat + 0.25)

    @property
    def usable(self) -> int:
        """Threads that can take a request: all of them but the ones abandoned calls hold."""
        return max(0, self.threads - self.stuck)


class Registry:
    """The workers heard from on the engine's topics, with their last-seen times."""

    def __init__(self, topics: Iterable[str], limit: float) -> None:
        self.topics = tuple(topics)
        self._topics = frozenset(self.topics)
        self.limit = limit
        self.workers: dict[str, WorkerInfo] = {}

    def notified(self, data: dict[str, Any]) -> WorkerInfo | None:
        """Record a validated ``notify``; returns the worker when its topic is one of ours."""
        if data["topic"] not in self._topics:
            return None
        info = self.workers.get(data["worker"])
        if info is None:
            info = self.workers[data["worker"]] = WorkerInfo(
                data["worker"],
                data["topic"],
                frozenset(data["tasks"]),
                int(data["threads"]),
                float(data["heartbeat"]),
            )
        else:
            info.tasks = frozenset(data["tasks"])
            info.heartbeat = float(data["heartbeat"])
            info.threads = int(data["threads"])
        info.running = frozenset(data["running"])
        info.stuck = int(data.get("stuck", 0))
        info.async_slots = int(data.get("async_slots", 0))
        info.batch = int(data.get("batch", 0))
        info.last_seen = time.monotonic()
        return info

    def seen(self, worker_id: str) -> WorkerInfo | None:
        """A message from ``worker_id`` arrived: it is alive now."""
        info = self.workers.get(worker_id)
        if info is not None:
            info.last_seen = time.monotonic()
        return info

    def alive(self, worker_id: str, now: float) -> bool:
        info = self.workers.get(worker_id)
        return info is not None and info.alive(now, self.limit)

    def capacity(self, task: str, now: float, is_async: bool = False) -> dict[str, int]:
        """Topic -> usable threads (async slots, for an async call) of the live workers serving ``task``
        there (topics with none left out)."""
        out: dict[str, int] = {}
        for info in self.workers.values():
            slots = info.async_slots if is_async else info.usable
            if task in info.tasks and slots and info.alive(now, self.limit):
                out[info.topic] = out.get(info.topic, 0) + slots
        return out

    def threads(self, now: float, is_async: bool = False) -> dict[str, int]:
        """Topic -> usable threads (async slots) of all its live workers, whatever they serve."""
        out: dict[str, int] = {}
        for info in self.workers.values():
            slots = info.async_slots if is_async else info.usable
            if slots and info.alive(now, self.limit):
                out[info.topic] = out.get(info.topic, 0) + slots
        return out

    def batch(self, topic: str, task: str, now: float, per_thread: int = 1) -> tuple[int, int, int]:
        """How requests for ``task`` go to ``topic`` in ``requests`` messages: ``(most, workers,
        threads)``. ``most``: what every live worker serving it there takes in one message, and no
        more than ``per_thread`` times the usable threads of the smallest; 0 when one takes single
        requests only (or none is alive). ``workers``: how many live workers serve it there;
        ``threads``: the usable threads of the smallest (see ``WorkerDispatcher._send``, which spreads
        requests over enough messages that no worker idles while another holds a backlog)."""
        size = workers = threads = 0
        for info in self.workers.values():
            if info.topic == topic and task in info.tasks and info.alive(now, self.limit):
                usable = max(1, info.usable)
                most = min(info.batch, usable * per_thread)
                if most <= 0:
                    return 0, 0, 0
                size = most if size == 0 else min(size, most)
                threads = usable if workers == 0 else min(threads, usable)
                workers += 1
        return size, workers, threads

    def saturated(self, topic: str, task: str, now: float) -> bool:
        """Live workers serve ``task`` on ``topic``, and their last heartbeats say every usable thread
        of theirs is running something (for any engine): a request queued there is waiting its turn."""
        usable = running = 0
        for info in self.workers.values():
            if info.topic == topic and task in info.tasks and info.alive(now, self.limit):
                usable += info.usable
                running += len(info.running)
        return usable > 0 and running >= usable

    def forgive(self) -> None:
        """Our own connection was down, so the workers' silence proves nothing: treat every worker as
        just seen, and give it :data:`RECONNECT_GRACE_S` (within ``limit``) to come back itself."""
        now = time.monotonic()
        for info in self.workers.values():
            info.last_seen = now
            info.excused_until = now + min(RECONNECT_GRACE_S, self.limit)
