"""Find a flow factory by import path (``"package.module:attribute"``) and build its flow.

Used by ``flowkit run`` and ``flowkit graph``, by ``engines.load_from_detail`` and by anything else told
which flow to run by name (conductors resuming a job's flow). The attribute
may be a callable returning a flow (a "factory") or a flow itself; dotted attributes
(``"pkg.mod:Builder.create"``) are followed. Every mistake is an
:class:`~flowkit.exceptions.InvalidFlowError` that names the path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, cast

from flowkit.atom import Atom
from flowkit.exceptions import InvalidFlowError
from flowkit.flow import Flow
from flowkit.patterns.linear_flow import LinearFlow

FlowFactory = Callable[..., Flow]

__all__ = ["FlowFactory", "build_flow", "check_allowed", "resolve_factory"]


def _split(path: str) -> tuple[str, str]:
    if not isinstance(path, str) or path.count(":") != 1:
        raise InvalidFlowError(f"factory path {path!r} must look like 'package.module:attribute' (one colon)")
    module_name, attr = (part.strip() for part in path.split(":"))
    if not module_name or not attr:
        raise InvalidFlowError(
            f"factory path {path!r} must name both a module and an attribute: 'package.module:attribute'"
        )
    return module_name, attr


def _allowed(module_name: str, allow: Iterable[str]) -> bool:
    return any(module_name == prefix or module_name.startswith(prefix.rstrip(".") + ".") for prefix in allow)


def check_allowed(path: str, allow: Iterable[str] | None) -> None:
    """Raise :class:`InvalidFlowError` unless ``path``'s module is under one of the ``allow`` prefixes.

    ``["mypkg"]`` accepts ``mypkg`` and ``mypkg.flows`` (not ``mypkgx``); ``None`` accepts any path,
    ``[]`` none. Nothing is imported: a caller that checks first never runs a disallowed module's code.
    Under an allow list a malformed path is refused too.
    """
    if allow is None:
        return
    module_name, _ = _split(path)
    allow = list(allow)
    if not _allowed(module_name, allow):
        raise InvalidFlowError(
            f"factory path {path!r}: module {module_name!r} is not under an allowed prefix "
            f"({', '.join(repr(a) for a in allow) or 'none allowed'})"
        )


def _as_flow(obj: Any) -> Flow | None:
    if isinstance(obj, Flow):
        return obj
    if isinstance(obj, Atom):
        return LinearFlow(obj.name).add(obj)
    return None


def resolve_factory(path: str, allow: Iterable[str] | None = None) -> FlowFactory:
    """The flow factory named by ``path`` (``"package.module:attribute"``).

    When the attribute is a flow (or a single task) rather than a callable, the factory
    returned gives that object back (and takes no arguments). ``allow``, when given, lists
    module prefixes the path must be under (``["mypkg"]`` accepts ``mypkg.flows``), so a
    job cannot make this process import an arbitrary module.
    """
    check_allowed(path, allow)
    module_name, attr = _split(path)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise InvalidFlowError(
            f"factory path {path!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    parts = attr.split(".")
    for k, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = f"module {module_name!r}" if k == 0 else repr(f"{module_name}:{'.'.join(parts[:k])}")
            raise InvalidFlowError(f"factory path {path!r}: {owner} has no attribute {part!r}") from None
    flow = _as_flow(obj)
    if flow is not None:

        def constant() -> Flow:
            return flow

        return constant
    if not callable(obj):
        raise InvalidFlowError(
            f"factory path {path!r} names a {type(obj).__name__}, not a flow or a callable returning one"
        )
    return cast(FlowFactory, obj)


def build_flow(path: str, *args: Any, allow: Iterable[str] | None = None, **kwargs: Any) -> Flow:
    """Resolve ``path`` and call the factory with ``args``/``kwargs``; check that it gave a flow.

    A factory that raises, or returns something other than a flow (or a single task, which
    is wrapped in a linear flow of the same name), is an :class:`InvalidFlowError` naming ``path``.
    """
    factory = resolve_factory(path, allow=allow)
    try:
        made = factory(*args, **kwargs)
    except Exception as exc:
        raise InvalidFlowError(f"factory {path!r} raised {type(exc).__name__}: {exc}") from exc
    flow = _as_flow(made)
    if flow is None:
        raise InvalidFlowError(
            f"factory {path!r} returned {made!r} ({type(made).__name__}), not a flowkit flow"
        )
    return flow
