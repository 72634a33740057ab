"""Running something (usually ``engine.run``) on a daemon thread while the test acts on it meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Background:
    """Calls ``target`` on a daemon thread at once and keeps whatever it raised (BaseException too), so a
    test can interrupt, kill or stop what the call depends on and then look at how the call ended."""

    def __init__(self, target: Callable[[], object], name: str = "background") -> None:
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._target = target
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.done.set()

    def wait(self, timeout: float) -> bool:
        """True when the call has ended within ``timeout`` seconds."""
        return self.done.wait(timeout)
