"""Who serves an exchange now: ask every worker to announce itself and collect the answers.

``flowkit fleet --transport URL`` and ``flowkit serve --transport URL`` list workers this way: the same
``discover`` an engine sends (see :mod:`flowkit.workers.protocol`), answered by each live worker with
its ``notify``, collected for ``wait`` seconds. Workers have no board: one that died simply does not
answer (engines judge silence themselves, :mod:`flowkit.workers.discovery`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from flowkit import extras
from flowkit.exceptions import InvalidMessageError, WorkerError
from flowkit.workers import protocol as p
from flowkit.workers import topology as t

__all__ = ["WorkerSeen", "census"]


@dataclass(frozen=True)
class WorkerSeen:
    """One worker as its answer described it."""

    id: str
    topic: str
    tasks: tuple[str, ...]
    threads: int
    heartbeat: float
    """Seconds between its announcements."""
    running: tuple[str, ...]
    """The requests (uuids) it runs now."""
    started: float | None
    seen: float
    """Seconds since the epoch when its answer arrived."""

    @property
    def host(self) -> str:
        """Its host, from its id (``HOST.PID.RANDOM`` unless it was named otherwise)."""
        parts = self.id.rsplit(".", 2)
        return parts[0] if len(parts) == 3 else "?"

    @property
    def pid(self) -> int:
        parts = self.id.rsplit(".", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def census(
    transport: str, exchange: str, wait: float = 1.0, connect_timeout: float = 5.0
) -> list[WorkerSeen]:
    """The workers on ``exchange`` that answer within ``wait`` seconds, by id.

    :class:`~flowkit.exceptions.WorkerError` when the broker cannot be reached in ``connect_timeout``.
    """
    extras.require("amqp", "listing workers")
    import kombu

    seen: dict[str, WorkerSeen] = {}

    def on_message(message: Any) -> None:
        try:
            data = p.decode(message.body, message.content_type, (p.NOTIFY,))
        except InvalidMessageError:
            return
        started = data.get("started")
        seen[data["worker"]] = WorkerSeen(
            id=data["worker"],
            topic=data["topic"],
            tasks=tuple(data["tasks"]),
            threads=int(data["threads"]),
            heartbeat=float(data["heartbeat"]),
            running=tuple(data["running"]),
            started=float(started) if isinstance(started, int | float) else None,
            seen=time.time(),
        )

    name = f"{exchange}.census.{uuid.uuid4().hex[:12]}"
    try:
        with kombu.Connection(transport, connect_timeout=connect_timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=connect_timeout)
            channel = conn.channel()
            t.declare_exchanges(channel, exchange)
            queue = t.reply_queue(exchange, name, expires=max(10.0, wait * 4))
            with kombu.Consumer(channel, [queue], no_ack=True, on_message=on_message, accept=["json"]):
                kombu.Producer(channel, auto_declare=False).publish(
                    p.encode(p.DISCOVER),
                    exchange=t.discover_exchange(exchange),
                    routing_key="",
                    content_type=p.CONTENT_TYPE,
                    content_encoding="utf-8",
                    reply_to=name,
                    retry=False,
                )
                deadline = time.monotonic() + wait
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        conn.drain_events(timeout=left)
                    except TimeoutError:
                        break
            queue(channel).delete()
    except (OSError, kombu.exceptions.KombuError) as exc:
        raise WorkerError(f"cannot list the workers on {exchange!r}: broker unreachable: {exc}") from None
    return sorted(seen.values(), key=lambda w: w.id)
