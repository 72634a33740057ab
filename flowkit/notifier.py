"""Publish/subscribe for flow and atom events.

Engines call :meth:`Notifier.notify` on every state change; the cost when nobody
listens must be near zero, so engines check :attr:`Notifier.active` before they
build a details dict. Callbacks are called as ``callback(event, details)``.
A callback that raises is logged and does not stop the flow: listeners observe,
they never steer.

The rest of TaskFlow's notifier surface is here too (``Notifier.ANY``, ``len()``, ``reset()``,
``copy()``, ``args``/``kwargs`` bound at registration, :class:`RestrictedNotifier`), also under
TaskFlow's path ``flowkit.types.notifier``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from flowkit.exceptions import NotifierRegistrationError

LOG = logging.getLogger(__name__)

ANY = "*"
"""Register for this event to receive every event."""

EVENT_UPDATE_PROGRESS = "update_progress"
"""Atom event sent by :meth:`flowkit.Task.update_progress`; details carry ``progress`` (0.0-1.0)."""

Event = Hashable
"""What callbacks are registered for: a state, :data:`ANY`, or any hashable name a caller chooses."""
Callback = Callable[..., object]
DetailsFilter = Callable[[dict[str, Any]], bool]
_Entry = tuple[Callback, DetailsFilter | None, tuple[Any, ...], dict[str, Any] | None]


class Notifier:
    """A registry of callbacks per event (or :data:`ANY`)."""

    __slots__ = ("_by_event", "active")

    ANY = ANY
    """Register for this event to receive every event (TaskFlow's ``Notifier.ANY``)."""

    def __init__(self) -> None:
        self._by_event: dict[Event, list[_Entry]] = {}
        self.active = False
        """True when at least one callback is registered (cheap check for hot paths)."""

    def register(
        self,
        event: Event,
        callback: Callback,
        details_filter: DetailsFilter | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Call ``callback(event, details)`` when ``event`` (or any event, for :data:`ANY`) happens.

        ``details_filter``, when given, must return true for the callback to be called. With
        ``args``/``kwargs`` the call is TaskFlow's ``callback(event, *args, details=details, **kwargs)``.
        One callback is registered once per event and filter: a second time raises
        :class:`~flowkit.exceptions.NotifierRegistrationError`, as does a callback that is not callable.
        """
        if not callable(callback):
            raise NotifierRegistrationError(f"notifier callback must be callable, got {callback!r}")
        if details_filter is not None and not callable(details_filter):
            raise NotifierRegistrationError(f"details_filter must be callable, got {details_filter!r}")
        if kwargs is not None and "details" in kwargs:
            raise KeyError("'details' is passed to every callback; it cannot be a bound keyword argument")
        if not self.can_be_registered(event):
            raise NotifierRegistrationError(f"event {event!r} cannot be registered on {self!r}")
        if self.is_registered(event, callback, details_filter):
            raise NotifierRegistrationError(f"callback {callback!r} is already registered for {event!r}")
        bound = dict(kwargs) if kwargs else None
        self._by_event.setdefault(event, []).append((callback, details_filter, tuple(args or ()), bound))
        self.active = True

    def deregister(
        self, event: Event, callback: Callback, details_filter: DetailsFilter | None = None
    ) -> bool:
        """Remove ``callback`` from ``event``; return whether it was registered.

        Without ``details_filter`` the first registration of ``callback`` goes, whatever its filter.
        """
        entries = self._by_event.get(event, [])
        for i, (cb, flt, _, _) in enumerate(entries):
            if cb == callback and (details_filter is None or flt == details_filter):
                del entries[i]
                if not entries:
                    del self._by_event[event]
                self.active = bool(self._by_event)
                return True
        return False

    def deregister_event(self, event: Event) -> int:
        """Remove every callback of ``event``; return how many there were."""
        removed = len(self._by_event.pop(event, ()))
        self.active = bool(self._by_event)
        return removed

    def is_registered(
        self, event: Event, callback: Callback, details_filter: DetailsFilter | None = None
    ) -> bool:
        """Whether ``callback`` is registered for ``event`` with exactly this ``details_filter``."""
        return any(
            cb == callback and flt == details_filter for cb, flt, _, _ in self._by_event.get(event, [])
        )

    def listeners_count(self) -> int:
        return sum(len(v) for v in self._by_event.values())

    def __len__(self) -> int:
        return self.listeners_count()

    def reset(self) -> None:
        """Forget every callback."""
        self._by_event.clear()
        self.active = False

    def registered_event_types(self) -> frozenset[Event]:
        return frozenset(self._by_event)

    def listeners_iter(self) -> Iterator[tuple[Event, list[Callback]]]:
        """``(event, [callbacks])`` for each event with callbacks."""
        for event, entries in list(self._by_event.items()):
            yield event, [cb for cb, _, _, _ in entries]

    def can_be_registered(self, event: Event) -> bool:
        """Whether callbacks may be registered for ``event`` (always, for this class)."""
        return True

    def can_trigger_notification(self, event: Event) -> bool:
        """Whether ``notify(event, ...)`` reaches callbacks: any event but :data:`ANY` itself."""
        return event != ANY

    def copy(self) -> Notifier:
        """A notifier with the same registrations (later changes to either do not affect the other)."""
        other = type(self).__new__(type(self))
        Notifier.__init__(other)
        other._by_event = {event: list(entries) for event, entries in self._by_event.items()}
        other.active = self.active
        self._copy_extra(other)
        return other

    def _copy_extra(self, other: Notifier) -> None:
        """Subclasses copy their own settings here."""

    def notify(self, event: Event, details: Mapping[str, Any]) -> None:
        """Call every callback registered for ``event`` and for :data:`ANY` (not for ``ANY`` itself)."""
        if not self.active or event == ANY:
            return
        for key in (event, ANY):
            for callback, details_filter, args, kwargs in list(self._by_event.get(key, ())):
                data = dict(details)
                if details_filter is not None and not details_filter(data):
                    continue
                try:
                    if args or kwargs:
                        callback(event, *args, details=data, **(kwargs or {}))
                    else:
                        callback(event, data)
                except Exception:
                    LOG.exception("notification callback %r failed for event %s", callback, event)


class RestrictedNotifier(Notifier):
    """A notifier that accepts registrations only for the events it was made with (and
    :data:`ANY`, unless ``allow_any`` is false): a misspelt event fails at ``register``."""

    __slots__ = ("_allow_any", "_watchable")

    def __init__(self, watchable_events: Iterable[Event], allow_any: bool = True) -> None:
        super().__init__()
        self._watchable = frozenset(watchable_events)
        self._allow_any = allow_any

    def events_iter(self) -> Iterator[Event]:
        """The events callbacks may be registered for."""
        yield from self._watchable
        if self._allow_any:
            yield ANY

    def can_be_registered(self, event: Event) -> bool:
        return event in self._watchable or (self._allow_any and event == ANY)

    def _copy_extra(self, other: Notifier) -> None:
        assert isinstance(other, RestrictedNotifier)
        other._watchable = self._watchable
        other._allow_any = self._allow_any
