"""The listener base: registration on an engine's two notifiers, dispatch, and one lock.

A listener only observes; it never steers the flow (the notifier logs and swallows
anything a callback raises). The engine notifies state changes from its scheduler
thread, but a parallel engine reports task progress from worker threads, so every
event is handled under the listener's own lock: subclasses need no locking of their
own for the state they keep.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from flowkit.notifier import ANY, EVENT_UPDATE_PROGRESS
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

JUNCTION_KIND = "junction"


class Listener:
    """Base of all listeners: subclass it and override the ``on_*`` hooks you need.

    ``register()`` attaches the listener to ``engine`` and ``deregister()`` detaches it;
    both are idempotent. Used as a context manager, the listener is registered on entry
    and deregistered on exit::

        with PrintingListener(engine):
            engine.run()
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._registered = False

    # -- registration -------------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """Whether the listener is attached to its engine."""
        return self._registered

    def register(self) -> None:
        """Attach to the engine's flow and atom notifiers (does nothing if already attached)."""
        with self._lock:
            if self._registered:
                return
            self.engine.notifier.register(ANY, self._flow_event)
            self.engine.atom_notifier.register(ANY, self._atom_event)
            self._registered = True

    def deregister(self) -> None:
        """Detach from the engine's notifiers (does nothing if not attached)."""
        with self._lock:
            if not self._registered:
                return
            self.engine.notifier.deregister(ANY, self._flow_event)
            self.engine.atom_notifier.deregister(ANY, self._atom_event)
            self._registered = False

    def __enter__(self) -> Self:
        self.register()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deregister()

    # -- dispatch -----------------------------------------------------------------------------------

    def _flow_event(self, state: Any, details: dict[str, Any]) -> None:
        with self._lock:
            self.on_flow(FlowState(state), details)

    def _atom_event(self, event: Any, details: dict[str, Any]) -> None:
        if details.get("kind") == JUNCTION_KIND:
            return  # internal nodes: never shown
        with self._lock:
            if event == EVENT_UPDATE_PROGRESS:
                self.on_progress(details["atom_name"], float(details.get("progress", 0.0)), details)
            else:
                self.on_atom(details["atom_name"], AtomState(event), details)

    # -- hooks --------------------------------------------------------------------------------------

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        """The flow moved to ``state``; ``details`` has ``flow_name``, ``flow_uuid``, ``old_state``."""

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        """An atom moved to ``state``; ``details`` has ``kind``, ``old_state``, ``result`` and more.

        On FAILURE and REVERT_FAILURE, ``details["result"]`` is the :class:`~flowkit.Failure`.
        """

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        """A task reported progress (0.0 to 1.0) with ``update_progress``; may come from any thread."""
