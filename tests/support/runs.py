"""Acting on an engine's run from a test: when an atom reaches a state, and with a bound on the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowkit import engines
from flowkit.notifier import ANY
from flowkit.states import AtomState
from tests.support.background import Background


def on_atom(engine: engines.Engine, name: str, state: AtomState, do: Callable[[], object]) -> None:
    """Call ``do()`` (in the engine's listener, so before the engine goes on) each time atom ``name``
    enters ``state``."""

    def listener(seen: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == name and seen is state:
            do()

    engine.atom_notifier.register(ANY, listener)


def run_bounded(engine: engines.Engine, within: float) -> BaseException | None:
    """Run ``engine`` on a thread; what it raised (None: nothing). Fails if it is not over in ``within``
    seconds, so a run that something holds open fails its test instead of hanging it."""
    run = Background(engine.run, name="bounded-run")
    assert run.wait(within), f"the run did not end within {within}s"
    return run.errors[0] if run.errors else None
