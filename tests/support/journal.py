"""A record of what tasks did, kept in a file so every dispatcher can write it.

Threads, forkserver processes and worker threads all append JSON lines to one file (``O_APPEND``: one
short line is one write, so lines from several processes never interleave). The file's order is the
order the events happened in, which the revert-order tests read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def record(journal: str, kind: str, name: str, **data: Any) -> int:
    """Append one event; return how many events of this ``kind`` and ``name`` there are now."""
    line = json.dumps({"kind": kind, "name": name, "data": data}, sort_keys=True) + "\n"
    with open(journal, "a", encoding="utf-8") as out:
        out.write(line)
    return sum(1 for k, n, _ in Journal(journal).events if (k, n) == (kind, name))


class Events:
    """Queries over a list of ``(kind, name, data)`` events: names in order, one event's data, an event's
    position. Subclasses say where the events are kept (``events``)."""

    @property
    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        raise NotImplementedError

    def names(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.events if k == kind]

    def data(self, kind: str, name: str) -> dict[str, Any]:
        matches = [d for k, n, d in self.events if k == kind and n == name]
        assert len(matches) == 1, (kind, name, matches)
        return matches[0]

    def seq(self, kind: str, name: str) -> int:
        for i, (k, n, _) in enumerate(self.events):
            if k == kind and n == name:
                return i
        raise AssertionError(f"no {kind} event for {name}")


class Journal(Events):
    """The events tasks appended to the journal file at ``path`` (see :func:`record`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]
        return [(row["kind"], row["name"], row["data"]) for row in rows]

    def __str__(self) -> str:
        return str(self.path)
