"""Durable waits: atoms that wait for a time (:class:`Sleep`) or an external event (:class:`WaitForEvent`).

A wait holds no thread. The engine does not call their ``execute``: it notes the wait's deadline and
the event it waits for (saved with the flow, in the atom's details, so a resume continues the
remaining time and finds an event sent meanwhile) and its loop sleeps until the next deadline or
event (:mod:`flowkit.engines.waiting`). Under a conductor a flow whose runnable atoms all wait is
parked: its job goes back to the board until its time or its event (see ``docs/waits.md``).
"""

from __future__ import annotations

import contextlib
import math
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowkit.atom import ProvidesSpec, RebindSpec
from flowkit.exceptions import InvalidFlowError
from flowkit.task import Task


class Wait(Task):
    """What every durable wait shares: the engine recognises one by this class and never calls
    ``execute`` on a thread; ``revert`` has nothing to undo."""

    def execute(self, **kwargs: Any) -> Any:  # pragma: no cover - the engine never calls it
        raise InvalidFlowError(f"atom {self.name!r} is a durable wait: only an engine runs it")

    def revert(self, *args: Any, **kwargs: Any) -> None:
        """Waiting left nothing behind."""

    def deadline(self, kwargs: Mapping[str, Any], started: float) -> float | None:
        """When the wait ends by itself (epoch seconds), given its arguments and when it began."""
        raise NotImplementedError

    def event_name(self, kwargs: Mapping[str, Any]) -> str | None:
        """The event that ends the wait, or None (a plain sleep)."""
        return None


class Sleep(Wait):
    """Wait ``seconds`` (or until the aware datetime ``until``); either may come from the store with
    ``rebind={"seconds": "pause_for"}`` (or ``{"until": ...}``). Its result is None."""

    def __init__(
        self,
        name: str | None = None,
        seconds: float | None = None,
        until: datetime | None = None,
        *,
        rebind: RebindSpec = None,
        provides: ProvidesSpec = None,
    ) -> None:
        if seconds is not None and until is not None:
            raise InvalidFlowError(f"Sleep {name!r}: give seconds= or until=, not both")
        self.seconds = None if seconds is None else _seconds(name, seconds)
        self.until = None if until is None else _aware(name, until)
        super().__init__(name=name, rebind=rebind, provides=provides)
        if self.seconds is None and self.until is None and rebind is None:
            raise InvalidFlowError(
                f"Sleep {self.name!r}: say how long, with seconds=, until=, or rebind to a symbol"
            )

    def execute(self, seconds: float | None = None, until: datetime | None = None) -> None:  # type: ignore[override]
        raise InvalidFlowError(f"atom {self.name!r} is a durable wait: only an engine runs it")

    def deadline(self, kwargs: Mapping[str, Any], started: float) -> float | None:
        seconds, until = self.seconds, self.until
        if seconds is None and until is None:  # rebound: from the store
            seconds, until = kwargs.get("seconds"), kwargs.get("until")
        if until is not None:
            return _aware(self.name, until).timestamp()
        if seconds is None:
            raise InvalidFlowError(f"Sleep {self.name!r}: neither seconds nor until was bound from the store")
        return started + _seconds(self.name, seconds)


class WaitForEvent(Wait):
    """Wait for the event ``event`` (``str.format``-ted from the store: ``"approve-{cluster_id}"``
    requires ``cluster_id``), at most ``timeout`` seconds (then it fails with
    :class:`~flowkit.exceptions.WaitTimeout`). Its result is the event's payload."""

    def __init__(
        self,
        name: str | None = None,
        event: str = "",
        timeout: float | None = None,
        *,
        provides: ProvidesSpec = None,
        rebind: RebindSpec = None,
    ) -> None:
        if not isinstance(event, str) or not event:
            raise InvalidFlowError(f"WaitForEvent {name!r}: event must be a non-empty str, got {event!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(event) if f is not None]
        except ValueError as exc:
            raise InvalidFlowError(f"WaitForEvent {name!r}: event {event!r} is not a format: {exc}") from exc
        if any(not f.isidentifier() for f in fields):
            raise InvalidFlowError(
                f"WaitForEvent {name!r}: event {event!r} may only name store symbols ({{symbol}})"
            )
        self.event = event
        self.wait_timeout = None if timeout is None else _seconds(name, timeout)
        """Seconds the wait lasts at most (None: for ever)."""
        super().__init__(name=name, requires=sorted(set(fields)), rebind=rebind, provides=provides)

    def deadline(self, kwargs: Mapping[str, Any], started: float) -> float | None:
        return None if self.wait_timeout is None else started + self.wait_timeout

    def event_name(self, kwargs: Mapping[str, Any]) -> str:
        return self.event.format(**kwargs)


def _seconds(name: str | None, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise InvalidFlowError(f"wait {name!r}: seconds must be a number >= 0, got {value!r}")
    return float(value)


def _aware(name: str | None, value: Any) -> datetime:
    if isinstance(value, str):  # a store saved as JSON keeps datetimes as ISO text
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidFlowError(f"wait {name!r}: until must be a timezone-aware datetime, got {value!r}")
    return value
