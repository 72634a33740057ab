"""Parked jobs: a flow whose runnable atoms are all durable waits leaves its conductor until its time.

A conductor runs its engines with ``park_waits``; when a flow has nothing left but waits, the engine
stops (the flow SUSPENDED, the waits' deadlines saved) and says until when and for which events
(``engine.parked``). The conductor then parks the job: state WAITING on the board with its wake-up time
and awaited events, the claim released, no attempt counted. A WAITING job is claimable again once its
wake-up time has passed, or as soon as :func:`send_event` sends one of its events; any conductor claims
it and the engine it loads resumes the waits with their remaining time.

An event is saved in persistence *before* the board wakes the jobs that wait for it, and a park looks
for its events in persistence *after* the job is WAITING: so an event sent while a job is being parked
either finds the job WAITING, or is found by the park, and is never missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowkit.exceptions import JobBoardError
from flowkit.persistence import events as event_log

if TYPE_CHECKING:
    from flowkit.jobboard.base import JobBoard
    from flowkit.jobboard.job import Job

SEPARATOR = "\x1f"
"""Between awaited event names where a board keeps them as one text (the SQL board's column)."""


def park(board: JobBoard, job: Job, who: str, wake_at: float | None, events: Sequence[str]) -> None:
    """Park ``job`` (see the module docstring); at least one of ``wake_at`` and ``events`` is needed."""
    names = sorted({event_log.check_name(n) for n in events})
    if wake_at is not None and (isinstance(wake_at, bool) or not math.isfinite(wake_at)):
        raise JobBoardError(f"job {job}: wake_at must be a time in epoch seconds, got {wake_at!r}")
    if wake_at is None and not names:
        raise JobBoardError(f"job {job}: a parked job needs a wake-up time or an event to wait for")
    if any(SEPARATOR in n for n in names):
        raise JobBoardError(f"job {job}: an event name may not contain \\x1f: {names!r}")
    board._park(job, who, wake_at, names)
    if names and board.persistence is not None:  # an event sent while we parked: take it now
        from flowkit.jobboard.posting import persistence_of

        if event_log.latest_events(persistence_of(board), names):
            board._wake_waiting(names)


def send_event(board: JobBoard, name: str, payload: Any = None) -> int:
    """Save the event in the board's persistence, then wake the jobs waiting for it; return how many."""
    from flowkit.jobboard.posting import persistence_of

    event_log.check_name(name)
    event_log.send_event(persistence_of(board), name, payload)
    return board._wake_waiting([name])


def awaiting_text(names: Sequence[str]) -> str | None:
    """Event names as one text, each between two separators (so ``LIKE '%<sep>name<sep>%'`` finds one)."""
    return SEPARATOR + SEPARATOR.join(names) + SEPARATOR if names else None


def like_pattern(name: str) -> str:
    """The ``LIKE`` pattern (escape character ``\\``) of a job awaiting ``name``."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{SEPARATOR}{escaped}{SEPARATOR}%"
