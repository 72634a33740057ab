"""Which task classes a worker serves: ``--tasks`` specs turned into classes, and the path engines use.

A worker imports what its operator named, once, at start; requests can only pick among those classes by
path. That is the whole trust boundary: no message can make a worker import anything.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from flowkit.exceptions import WorkerError
from flowkit.task import FunctorTask, Task


def task_path(cls: type) -> str:
    """The path engines name a task class by (its module and qualified name)."""
    return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__


def resolve_tasks(specs: Iterable[type[Task] | str]) -> list[type[Task]]:
    """Task classes from classes or specs: ``"pkg.mod:Class"`` one class, ``"pkg.mod"`` every Task class
    defined in that module; a spec may list several, comma separated. Unknown names raise WorkerError."""
    out: dict[type[Task], None] = {}
    for spec in specs:
        if isinstance(spec, type):
            out[_check_task(spec, spec.__qualname__)] = None
            continue
        for part in filter(None, (s.strip() for s in spec.split(","))):
            for cls in _classes_of(part):
                out[cls] = None
    return list(out)


def _classes_of(spec: str) -> list[type[Task]]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerError(f"task spec {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    if attr:
        obj: Any = module
        for name in attr.split("."):
            obj = getattr(obj, name, None)
        return [_check_task(obj, spec)]
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Task)
        and obj.__module__ == module.__name__
        and obj.execute is not Task.execute
        and not inspect.isabstract(obj)
    ]
    if not found:
        raise WorkerError(f"task spec {spec!r}: module {module_name!r} defines no Task subclass")
    return found


def _check_task(obj: Any, spec: str) -> type[Task]:
    if not (isinstance(obj, type) and issubclass(obj, Task)) or obj is Task or obj is FunctorTask:
        raise WorkerError(f"task spec {spec!r} does not name a Task subclass (got {obj!r})")
    return obj
