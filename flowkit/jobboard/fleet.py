"""The fleet: conductors announce themselves on their board with heartbeats, so operators see who is alive.

A :class:`Heartbeat` thread writes the process's :class:`Member` record every ``interval`` seconds
(SQL board: a row of ``flowkit_fleet``; ZooKeeper board: a node under ``fleet/`` with an ephemeral
child that dies with the session). Reading the fleet judges each member: ``alive`` while it beats,
``gone`` once it has missed :data:`MISSED_BEATS` heartbeats (a killed, frozen or cut-off process; on
ZooKeeper also as soon as its session ends), ``stopped`` after a clean stop. Records of members gone
or stopped for longer than :data:`FORGET_AFTER` are dropped by the next announcement.

Workers announce themselves over AMQP already (``flowkit.workers.discovery``); they have no board.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard

LOG = logging.getLogger("flowkit.jobboard")

MISSED_BEATS = 3.0
DEFAULT_INTERVAL = 5.0
FORGET_AFTER = 86400.0
GOODBYE_TIMEOUT = 2.0
"""Seconds :meth:`Heartbeat.stop` waits for the board to take the goodbye."""


class MemberStatus(StrEnum):
    """What the fleet says of a member."""

    ALIVE = "alive"
    """Its last heartbeat is recent."""
    GONE = "gone"
    """Missed :data:`MISSED_BEATS` heartbeats (or its ZooKeeper session ended): killed, frozen or cut off."""
    STOPPED = "stopped"
    """Said goodbye when it stopped cleanly."""


@dataclass(frozen=True)
class Member:
    """One process of the fleet as its last heartbeat described it."""

    name: str
    kind: str = "conductor"
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    heartbeat: float = field(default_factory=time.time)
    """Seconds since the epoch of its last heartbeat."""
    interval: float = DEFAULT_INTERVAL
    running: tuple[str, ...] = ()
    """What it runs now: job uuids (conductors) or task names (workers)."""
    stopped: bool = False
    present: bool = True
    """False when the board knows the process is gone (its ZooKeeper session ended)."""

    def status(self, now: float | None = None) -> MemberStatus:
        if self.stopped:
            return MemberStatus.STOPPED
        now = time.time() if now is None else now
        if not self.present or now - self.heartbeat > MISSED_BEATS * self.interval:
            return MemberStatus.GONE
        return MemberStatus.ALIVE

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["running"] = list(self.running)
        record.pop("present")
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], present: bool = True) -> Member:
        return cls(
            name=str(record["name"]),
            kind=str(record.get("kind", "conductor")),
            host=str(record.get("host", "?")),
            pid=int(record.get("pid", 0)),
            started=float(record.get("started", 0.0)),
            heartbeat=float(record.get("heartbeat", 0.0)),
            interval=float(record.get("interval", DEFAULT_INTERVAL)),
            running=tuple(str(r) for r in record.get("running", ())),
            stopped=bool(record.get("stopped", False)),
            present=present,
        )


class Heartbeat:
    """Announces ``member()`` on ``board`` every ``interval`` seconds from a daemon thread.

    Failures (the board unreachable) are logged once per outage and retried on the next beat: a
    conductor that cannot announce itself still runs its jobs. :meth:`stop` says goodbye (``stopped``).
    """

    def __init__(
        self, board: JobBoard, member: Callable[[], Member], interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.board, self.member, self.interval = board, member, interval
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="flowkit-heartbeat", daemon=True)
        self._thread.start()

    def beat(self, **changes: Any) -> None:
        record = replace(self.member(), heartbeat=time.time(), interval=self.interval, **changes)
        try:
            self.board.announce(record)
        except Exception as exc:
            if not self._failing:
                LOG.warning("heartbeat of %r on %r failed: %s", record.name, self.board, exc)
            self._failing = True
            return
        if self._failing:
            LOG.info("heartbeat of %r on %r works again", record.name, self.board)
        self._failing = False

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self.beat()

    def stop(self, timeout: float = GOODBYE_TIMEOUT) -> None:
        """Stop beating and say goodbye, waiting at most ``timeout`` seconds for the board: a process
        stopping during an outage must not hang on it (it is then shown gone instead of stopped)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout)
        goodbye = threading.Thread(
            target=lambda: self.beat(stopped=True, running=()), name="flowkit-heartbeat-goodbye", daemon=True
        )
        goodbye.start()
        goodbye.join(timeout)
