"""The demo's simulated cloud: servers in a JSON file that every demo process shares."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class FakeCloud:
    """A cloud in a JSON file: servers by id, what was created and deleted, idempotency keys.

    A file (locked for each call) rather than memory, so that a process that crashed and the
    one that resumes its flow see the same servers, as they would see a real cloud.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def reset(self) -> None:
        with self._state() as state:
            state.clear()

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text()) if self.path.exists() else {}
                for key, empty in (("servers", {}), ("created", []), ("deleted", []), ("keys", {})):
                    state.setdefault(key, empty)
                yield state
                # write-and-rename: a process killed mid-write leaves the old file, never half of one
                scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
                scratch.write_text(json.dumps(state))
                os.replace(scratch, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, key: str) -> Any:
        with self._state() as state:
            return state[key]

    @property
    def servers(self) -> dict[str, str]:
        return dict(self._read("servers"))

    @property
    def created(self) -> list[str]:
        return list(self._read("created"))

    @property
    def deleted(self) -> list[str]:
        return list(self._read("deleted"))

    def create(self, name: str, idempotency_key: str | None = None) -> str:
        """Create a server, or return the one this key already created (a rerun after a crash)."""
        with self._state() as state:
            if idempotency_key is not None and idempotency_key in state["keys"]:
                return str(state["keys"][idempotency_key])
            server_id = f"srv-{name}"
            state["servers"][server_id] = "BUILDING"
            state["created"].append(server_id)
            if idempotency_key is not None:
                state["keys"][idempotency_key] = server_id
            return server_id

    def activate(self, server_id: str) -> None:
        with self._state() as state:
            state["servers"][server_id] = "ACTIVE"

    def delete(self, server_id: str) -> None:
        with self._state() as state:
            if state["servers"].pop(server_id, None) is not None:
                state["deleted"].append(server_id)
