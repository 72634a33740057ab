"""Ctrl-C during ``flowkit run``: stop cleanly, or at once when asked twice, and say what is left.

The first SIGINT suspends the engine: the atoms running now finish (their work is not cut in half),
nothing new starts, and the command says at once what it waits for. With ``--on-interrupt revert``
the suspended flow is then reverted. A second SIGINT exits at once, abandoning the running atoms.
Either way the command exits 130 (the shell's code for "ended by SIGINT") after telling which atoms
ran, which were running and which never started.

The signal handler itself only sets a flag and, for the second signal, writes with ``os.write`` and
leaves with ``os._exit``: it runs in the engine's thread between two bytecodes, possibly while that
thread holds a lock, so it takes none. Suspending and printing the first message happen in a small
watcher thread instead.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from flowkit.engines.engine import Engine
from flowkit.exceptions import ExecutionError
from flowkit.failure import Failure
from flowkit.states import AtomState, FlowState

S = AtomState
EXIT_CODE = 130
"""128 + SIGINT, what shells report for a command ended by Ctrl-C."""
SUSPEND, REVERT = "suspend", "revert"
ON_INTERRUPT = (SUSPEND, REVERT)

# How each atom state reads in the summary, in the order the groups are listed.
_GROUPS: tuple[tuple[AtomState, str], ...] = (
    (S.SUCCESS, "done"),
    (S.IGNORE, "skipped"),
    (S.FAILURE, "failed"),
    (S.RUNNING, "still running"),
    (S.RETRYING, "retrying"),
    (S.REVERTING, "still reverting"),
    (S.REVERTED, "reverted"),
    (S.REVERT_FAILURE, "could not be reverted"),
    (S.PENDING, "not started"),
)


class Interrupts:
    """SIGINT handling for one run of ``engine``; see the module docstring."""

    def __init__(self, engine: Engine, on_interrupt: str = SUSPEND, *, live: bool = False) -> None:
        self.engine = engine
        self.on_interrupt = on_interrupt
        self.live = live
        self.count = 0
        self._first = threading.Event()
        self._done = threading.Event()
        self._pid = os.getpid()

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT (and watch for it) for the duration of the ``with`` block."""
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        watcher = threading.Thread(target=self._watch, name="flowkit-run-interrupt", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            self._done.set()
            self._first.set()  # let the watcher end
            watcher.join(1.0)

    # -- the signal -----------------------------------------------------------------------------

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked worker process inherited the handler: not its call
            return
        self.count += 1
        if self.count == 1:
            self._first.set()
            return
        text = "\n".join(["interrupted again: exiting now", *self.left_behind()]) + "\n"
        if self.live:
            os.write(sys.stdout.fileno(), b"\x1b[?25h\n")  # the live table hid the cursor
        os.write(sys.stderr.fileno(), text.encode(errors="replace"))
        os._exit(EXIT_CODE)

    def _watch(self) -> None:
        self._first.wait()
        if self._done.is_set():
            return
        running = self._atoms_in(S.RUNNING, S.REVERTING)
        doing = "reverting" if self.on_interrupt == REVERT else "suspending"
        n = len(running)
        if n == 1:
            when = f"after the 1 running atom ({running[0]}) finishes"
        elif n > 1:
            when = f"after the {n} running atoms ({', '.join(running)}) finish"
        else:
            when = "now"
        click.echo(f"interrupted: {doing} {when}; Ctrl-C again to exit now", err=True)
        self.engine.suspend()

    # -- after the run --------------------------------------------------------------------------

    def should_revert(self) -> bool:
        """Whether the interrupted run is to be reverted now (it stopped suspended, and revert was asked)."""
        state = self.engine.storage.get_flow_state()
        return self.interrupted and self.on_interrupt == REVERT and state is FlowState.SUSPENDED

    def prepare_revert(self) -> None:
        """Make the engine's next ``run()`` revert everything that ran.

        The engine reverts a flow that has failures to revert for; an interrupt is given as that
        failure unless the flow was already reverting for failures of its own (those are kept).
        """
        storage = self.engine.storage
        if not storage.flow_failures:
            name = storage.flow_name
            reason = ExecutionError(f"flow {name!r} interrupted (SIGINT) and reverted: --on-interrupt revert")
            storage.flow_failures = {name: Failure.from_exception(reason)}

    def left_behind(self) -> list[str]:
        """What the interrupted flow left: its state, its atoms by state, and whether it can resume."""
        storage = self.engine.storage
        lines = [f"flow {storage.flow_name!r} {storage.get_flow_state().value} after an interrupt"]
        states = storage.get_atom_states()
        for state, label in _GROUPS:
            names = [name for name, s in states.items() if s is state]
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        lines.append(self._resume_hint())
        return lines

    def _resume_hint(self) -> str:
        state = self.engine.storage.get_flow_state()
        if state in (FlowState.REVERTED, FlowState.SUCCESS):
            return "  nothing to resume"
        return (
            "  its state was not saved (flowkit run keeps no persistence): running it again starts over, "
            "and atoms that ran run again"
        )

    def _atoms_in(self, *wanted: Any) -> list[str]:
        return [name for name, s in self.engine.storage.get_atom_states().items() if s in wanted]
