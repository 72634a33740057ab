"""The whole fleet as operators see it: conductors from the board's heartbeats, and workers from a census
of their exchange (when a broker is given). Used by ``flowkit fleet`` and ``GET /api/v1/fleet``; it
imports neither FastAPI nor kombu until a broker is named."""

from __future__ import annotations

from flowkit.jobboard import JobBoard
from flowkit.jobboard.fleet import Member

__all__ = ["fleet"]


def fleet(
    board: JobBoard, transport: str | None = None, exchange: str = "flowkit", wait: float = 1.0
) -> list[Member]:
    """The board's conductors, then (with ``transport``) the workers that answered within ``wait`` s."""
    members = list(board.fleet())
    if transport:
        from flowkit.workers.census import census

        for w in census(transport, exchange, wait):
            members.append(
                Member(
                    name=w.id,
                    kind="worker",
                    host=w.host,
                    pid=w.pid,
                    started=w.started or 0.0,
                    heartbeat=w.seen,
                    interval=w.heartbeat,
                    running=w.running,
                )
            )
    return members
