"""TaskFlow's view of an in-memory run: ``engine.storage.backend.memory`` as a small path tree.

TaskFlow keeps an engine loaded without a backend in a memory backend, a tree of paths
(``/books``, ``/flow_details/<flow uuid>/<atom uuid>`` linking to ``/atom_details/<atom uuid>``), and its
tools and examples print it (``backend.memory.pformat()``, ``ls``, ``ls_r``, ``memory[path]``).
flowkit keeps an in-memory run in its storage only (nothing is written per atom); this view builds
that tree from the storage each time ``memory`` is read, so it always shows the run as it is now.
It is read-only; the engine makes one small object per in-memory engine and never reads it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from flowkit.atom import version_text
from flowkit.compiler import JUNCTION, RETRY
from flowkit.exceptions import NotFound
from flowkit.persistence.models import TaskDetail
from flowkit.states import AtomState
from flowkit.storage import Storage

__all__ = ["MemoryTree", "MemoryView"]

_INTENTIONS = {
    AtomState.IGNORE: "IGNORE",
    AtomState.REVERTING: "REVERT",
    AtomState.REVERTED: "REVERT",
    AtomState.RETRYING: "RETRY",
}
"""An atom's intention as TaskFlow shows it, read from the state (as ``storage.get_atom_intention``)."""


class MemoryView:
    """Stands for TaskFlow's memory backend of an in-memory run: ``memory`` is the tree."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def memory(self) -> MemoryTree:
        """The run's tree as of now."""
        return MemoryTree(_entries(self._storage))


def _atom_value(st: Storage, i: int) -> dict[str, Any]:
    c = st.compiled
    state = st.states[i]
    kind = c.kinds[i]
    detail = TaskDetail(c.names[i], st.atom_uuids[i], state=state, meta=st.atom_meta.get(i))
    failure, revert_failure = st.failures[i], st.revert_failures[i]
    atom = {
        "failure": failure.to_dict() if failure is not None else None,
        "revert_failure": revert_failure.to_dict() if revert_failure is not None else None,
        "meta": detail.shown_meta() if kind != RETRY else dict(detail.meta),
        "name": c.names[i],
        "results": st.results[i],
        "revert_results": st.revert_results[i],
        "state": state.value,
        "version": version_text(c.atoms[i].version),
        "intention": _INTENTIONS.get(state, "EXECUTE"),
        "uuid": st.atom_uuids[i],
    }
    return {"atom": atom, "type": "RETRY_DETAIL" if kind == RETRY else "TASK_DETAIL"}


def _entries(st: Storage) -> dict[str, tuple[Any, str | None]]:
    """Every path of the tree, parents first: (value, the path it links to or None)."""
    flow_path = f"/flow_details/{st.flow_uuid}"
    out: dict[str, tuple[Any, str | None]] = {"/": (None, None), "/books": (None, None)}
    out["/flow_details"] = (None, None)
    out[flow_path] = (
        {
            "name": st.flow_name,
            "meta": dict(st.flow_meta),
            "state": st.flow_state.value,
            "uuid": st.flow_uuid,
        },
        None,
    )
    atoms: dict[str, tuple[Any, str | None]] = {"/atom_details": (None, None)}
    kinds = st.compiled.kinds
    for i in st.compiled.order:
        if kinds[i] == JUNCTION:
            continue
        uuid = st.atom_uuids[i]
        value = _atom_value(st, i)
        atoms[f"/atom_details/{uuid}"] = (value, None)
        out[f"{flow_path}/{uuid}"] = (value, f"/atom_details/{uuid}")
    out.update(atoms)
    return out


class MemoryTree:
    """A snapshot of the tree: paths, their children and values (TaskFlow's fake filesystem, read only)."""

    root_path = "/"

    def __init__(self, entries: dict[str, tuple[Any, str | None]]) -> None:
        self._entries = entries

    def _entry(self, path: str) -> tuple[Any, str | None]:
        try:
            return self._entries[posixpath.normpath(path) if path != "/" else path]
        except KeyError:
            raise NotFound(f"no path {path!r} in the in-memory run") from None

    def __getitem__(self, path: str) -> Any:
        return self._entry(path)[0]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and posixpath.normpath(path) in self._entries

    def ls(self, path: str) -> list[str]:
        """The names of the children of ``path``."""
        self._entry(path)
        return [posixpath.basename(p) for p in self._children(posixpath.normpath(path))]

    def ls_r(self, path: str, absolute: bool = False) -> list[str]:
        """Every path below ``path`` (relative to it unless ``absolute``), parents before children."""
        self._entry(path)
        base = posixpath.normpath(path)
        found = list(self._walk(base))
        return found if absolute else [posixpath.relpath(p, base) for p in found]

    def _children(self, path: str) -> Iterator[str]:
        for p in self._entries:
            if p != "/" and posixpath.dirname(p) == path:
                yield p

    def _walk(self, path: str) -> Iterator[str]:
        for child in self._children(path):
            yield child
            yield from self._walk(child)

    def pformat(self) -> str:
        """The tree drawn as TaskFlow draws it: ``|__name`` per node, links shown ``(link to /path)``."""
        lines = ["/"]
        self._draw("/", "", lines)
        return "\n".join(lines)

    def _draw(self, path: str, prefix: str, lines: list[str]) -> None:
        children = list(self._children(path))
        for n, child in enumerate(children):
            last = n == len(children) - 1
            link = self._entries[child][1]
            name = posixpath.basename(child) + (f" (link to {link})" if link else "")
            lines.append(f"{prefix}|__{name}")
            self._draw(child, prefix + ("   " if last else "|  "), lines)
