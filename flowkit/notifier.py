"""Publish/subscribe for flow and atom events.

Engines call :meth:`Notifier.notify` on every state change; the cost when nobody
listens must be near zero, so engines check :attr:`Notifier.active` before they
build a details dict. Callbacks are called as ``callback(event, details)``.
A callback that raises is logged and does not stop the flow: listeners observe,
they never steer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

LOG = logging.getLogger(__name__)

ANY = "*"
"""Register for this event to receive every event."""

EVENT_UPDATE_PROGRESS = "update_progress"
"""Atom event sent by :meth:`flowkit.Task.update_progress`; details carry ``progress`` (0.0-1.0)."""

Callback = Callable[[Any, dict[str, Any]], object]
DetailsFilter = Callable[[dict[str, Any]], bool]


class Notifier:
    """A registry of callbacks per event (or :data:`ANY`)."""

    __slots__ = ("_by_event", "active")

    def __init__(self) -> None:
        self._by_event: dict[Any, list[tuple[Callback, DetailsFilter | None]]] = {}
        self.active = False
        """True when at least one callback is registered (cheap check for hot paths)."""

    def register(self, event: Any, callback: Callback, details_filter: DetailsFilter | None = None) -> None:
        """Call ``callback(event, details)`` when ``event`` (or any event, for :data:`ANY`) happens.

        ``details_filter``, when given, must return true for the callback to be called.
        """
        if not callable(callback):
            raise TypeError(f"notifier callback must be callable, got {callback!r}")
        self._by_event.setdefault(event, []).append((callback, details_filter))
        self.active = True

    def deregister(self, event: Any, callback: Callback) -> bool:
        """Remove ``callback`` from ``event``; return whether it was registered."""
        entries = self._by_event.get(event, [])
        for i, (cb, _) in enumerate(entries):
            if cb == callback:
                del entries[i]
                if not entries:
                    del self._by_event[event]
                self.active = bool(self._by_event)
                return True
        return False

    def is_registered(self, event: Any, callback: Callback) -> bool:
        return any(cb == callback for cb, _ in self._by_event.get(event, []))

    def listeners_count(self) -> int:
        return sum(len(v) for v in self._by_event.values())

    def notify(self, event: Any, details: Mapping[str, Any]) -> None:
        """Call every callback registered for ``event`` and for :data:`ANY`."""
        if not self.active:
            return
        for key in (event, ANY):
            for callback, details_filter in list(self._by_event.get(key, ())):
                data = dict(details)
                if details_filter is not None and not details_filter(data):
                    continue
                try:
                    callback(event, data)
                except Exception:
                    LOG.exception("notification callback %r failed for event %s", callback, event)
