"""The listener base: registration on an engine's two notifiers, dispatch, and one lock.

A listener only observes; it never steers the flow (the notifier logs and swallows
anything a callback raises). The engine notifies state changes from its scheduler
thread, but a parallel engine reports task progress from worker threads, so every
event is handled under the listener's own lock: subclasses need no locking of their
own for the state they keep.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from flowkit.notifier import ANY, EVENT_UPDATE_PROGRESS
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

JUNCTION_KIND = "junction"

DEFAULT_LISTEN_FOR: tuple[str, ...] = (ANY,)
"""Every state: the default of the ``*_listen_for`` arguments (as in TaskFlow)."""

_RESULT_STATES = frozenset(
    {AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTED, AtomState.REVERT_FAILURE}
)
"""Atom states whose TaskFlow-style details carry ``result`` (the others have none to report)."""


def _listen_set(states: Iterable[str] | None) -> frozenset[str] | None:
    """None for "every state", else the states to pass on; ``None``/empty means none at all."""
    wanted = frozenset(states or ())
    return None if ANY in wanted else wanted


class Listener:
    """Base of all listeners: subclass it and override the ``on_*`` hooks you need.

    ``register()`` attaches the listener to ``engine`` and ``deregister()`` detaches it;
    both are idempotent. Used as a context manager, the listener is registered on entry
    and deregistered on exit::

        with PrintingListener(engine):
            engine.run()
    """

    def __init__(
        self,
        engine: Engine,
        task_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        flow_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
        retry_listen_for: Iterable[str] | None = DEFAULT_LISTEN_FOR,
    ) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._registered = False
        # TaskFlow-style receivers: the states each one hears, and whether a subclass overrides it
        # (so that listeners written flowkit's way pay nothing for them).
        self._listen_for = {
            "task": _listen_set(task_listen_for),
            "flow": _listen_set(flow_listen_for),
            "retry": _listen_set(retry_listen_for),
        }
        cls = type(self)
        self._receives_tasks = cls._task_receiver is not Listener._task_receiver
        self._receives_retries = cls._retry_receiver is not Listener._retry_receiver
        self._receives_flows = cls._flow_receiver is not Listener._flow_receiver

    @property
    def _engine(self) -> Engine:
        """TaskFlow's spelling of :attr:`engine`, for listeners ported from it."""
        return self.engine

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
            flow_state = FlowState(state)
            self.on_flow(flow_state, details)
            if self._receives_flows and self._hears("flow", flow_state):
                self._flow_receiver(flow_state, details)

    def _atom_event(self, event: Any, details: dict[str, Any]) -> None:
        kind = details.get("kind")
        if kind == JUNCTION_KIND:
            return  # internal nodes: never shown
        with self._lock:
            if event == EVENT_UPDATE_PROGRESS:
                self.on_progress(details["atom_name"], float(details.get("progress", 0.0)), details)
                return
            state = AtomState(event)
            self.on_atom(details["atom_name"], state, details)
            if kind == "retry":
                if self._receives_retries and self._hears("retry", state):
                    self._retry_receiver(state, _taskflow_details("retry", state, details))
            elif self._receives_tasks and self._hears("task", state):
                self._task_receiver(state, _taskflow_details("task", state, details))

    def _hears(self, kind: str, state: str) -> bool:
        wanted = self._listen_for[kind]
        return wanted is None or state in wanted

    # -- hooks --------------------------------------------------------------------------------------

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        """The flow moved to ``state``; ``details`` has ``flow_name``, ``flow_uuid``, ``old_state``."""

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        """An atom moved to ``state``; ``details`` has ``kind``, ``old_state``, ``result`` and more.

        On FAILURE and REVERT_FAILURE, ``details["result"]`` is the :class:`~flowkit.Failure`.
        """

    def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
        """A task reported progress (0.0 to 1.0) with ``update_progress``; may come from any thread."""

    # -- TaskFlow-style receivers -------------------------------------------------------------------
    # A listener ported from TaskFlow overrides these instead of the ``on_*`` hooks. They get
    # TaskFlow's details: ``task_name``/``task_uuid`` (or ``retry_name``/``retry_uuid``), ``old_state``
    # and, for SUCCESS, FAILURE, REVERTED and REVERT_FAILURE only, ``result``; flows get
    # ``flow_name``, ``flow_uuid`` and ``old_state``. The ``*_listen_for`` arguments choose the states.

    def _flow_receiver(self, state: FlowState, details: dict[str, Any]) -> None:
        """The flow moved to ``state`` (TaskFlow's hook)."""

    def _task_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        """A task moved to ``state`` (TaskFlow's hook)."""

    def _retry_receiver(self, state: AtomState, details: dict[str, Any]) -> None:
        """A retry controller moved to ``state`` (TaskFlow's hook)."""


def _taskflow_details(kind: str, state: AtomState, details: dict[str, Any]) -> dict[str, Any]:
    """An atom event's details in TaskFlow's shape (see the receivers above)."""
    out = {
        f"{kind}_name": details["atom_name"],
        f"{kind}_uuid": details.get("atom_uuid"),
        "old_state": details.get("old_state"),
    }
    if state in _RESULT_STATES:
        out["result"] = details.get("result")
    return out
