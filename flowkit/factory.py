"""Find a flow factory by import path (``"package.module:attribute"``) and build its flow.

Used by ``flowkit run`` and ``flowkit graph``, by ``engines.load_from_detail`` and by anything else told
which flow to run by name (conductors resuming a job's flow). The attribute
may be a callable returning a flow (a "factory") or a flow itself; dotted attributes
(``"pkg.mod:Builder.create"``) are followed. Every mistake is an
:class:`~flowkit.exceptions.InvalidFlowError` that names the path.

A path is strict: dotted ASCII identifiers, one colon, nothing else (no spaces, no ``__dunder__``
attributes), because it may come from a job that anyone who can post wrote. Under an allow list
(``allow=["mypkg"]``, a conductor's ``--allow``) a path must also name something *defined* in an
allowed module, not merely reachable from one: ``mypkg:os.system`` and ``mypkg:subprocess.getoutput``
name a shell, whatever module they are reached through. Each object met on the way is checked
before the next attribute is looked up, so no code outside the allowed modules runs.

A flow detail in persistence can name the factory that rebuilds its flow (:class:`FactoryDetails`,
kept in ``flow_detail.meta["factory"]``): that is how a conductor resumes a flow it did not create,
in a process that never saw the flow object.
"""

from __future__ import annotations

import importlib
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from flowkit.atom import Atom
from flowkit.exceptions import InvalidFlowError
from flowkit.flow import Flow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.rows import Codec
from flowkit.persistence.shared import backend_for

FlowFactory = Callable[..., Flow]

__all__ = [
    "FactoryDetails",
    "FlowFactory",
    "allow_list",
    "build_flow",
    "check_allowed",
    "check_path",
    "factory_path",
    "resolve_factory",
    "save_factory_details",
]

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DUNDER = re.compile(r"(?:^|\.)__\w*__(?:\.|$)")


def _split(path: str) -> tuple[str, str]:
    if not isinstance(path, str) or path.count(":") != 1:
        raise InvalidFlowError(f"factory path {path!r} must look like 'package.module:attribute' (one colon)")
    module_name, attr = path.split(":")
    if not module_name.strip() or not attr.strip():
        raise InvalidFlowError(
            f"factory path {path!r} must name both a module and an attribute: 'package.module:attribute'"
        )
    if not _DOTTED.fullmatch(module_name) or not _DOTTED.fullmatch(attr):
        raise InvalidFlowError(
            f"factory path {path!r} must look like 'package.module:attribute': dotted Python "
            f"identifiers (ASCII) on each side of one colon, no spaces"
        )
    if _DUNDER.search(attr):
        raise InvalidFlowError(f"factory path {path!r}: a factory is never a __dunder__ attribute")
    return module_name, attr


def check_path(path: str) -> None:
    """Raise :class:`InvalidFlowError` unless ``path`` is a well-formed ``"package.module:attribute"``."""
    _split(path)


def allow_list(allow: str | Iterable[str] | None) -> list[str] | None:
    """``allow`` as a checked list of module prefixes (a lone string is one prefix); None stays None."""
    if allow is None:
        return None
    prefixes = [allow] if isinstance(allow, str) else list(allow)
    for prefix in prefixes:
        if not isinstance(prefix, str) or not _DOTTED.fullmatch(prefix.rstrip(".")):
            raise InvalidFlowError(
                f"allow list entry {prefix!r} is not a module prefix such as 'mypkg.flows'"
            )
    return prefixes


def _allowed(module_name: str, allow: Iterable[str]) -> bool:
    return any(module_name == prefix or module_name.startswith(prefix.rstrip(".") + ".") for prefix in allow)


def _refuse(path: str, allow: list[str], why: str) -> InvalidFlowError:
    allowed = ", ".join(repr(a) for a in allow) or "none allowed"
    return InvalidFlowError(f"factory path {path!r}: {why} not under an allowed prefix ({allowed})")


def check_allowed(path: str, allow: Iterable[str] | None) -> None:
    """Raise :class:`InvalidFlowError` unless ``path``'s module is under one of the ``allow`` prefixes.

    ``["mypkg"]`` accepts ``mypkg`` and ``mypkg.flows`` (not ``mypkgx``); ``None`` accepts any path,
    ``[]`` none. Nothing is imported: a caller that checks first never runs a disallowed module's code.
    Under an allow list a malformed path is refused too. (That the attribute is *defined* in an
    allowed module can only be checked by importing it: :func:`resolve_factory` does.)
    """
    if allow is None:
        return
    module_name, _ = _split(path)
    allow = list(allow)
    if not _allowed(module_name, allow):
        raise _refuse(path, allow, f"module {module_name!r} is")


def _home(obj: Any) -> str | None:
    """The module that defines ``obj`` (a module: itself), or None when it does not say."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    home = getattr(obj, "__module__", None)
    return home if isinstance(home, str) else None


def _as_flow(obj: Any) -> Flow | None:
    if isinstance(obj, Flow):
        return obj
    if isinstance(obj, Atom):
        return LinearFlow(obj.name).add(obj)
    return None


def _walk(path: str, allow: list[str] | None) -> Any:
    """The object ``path`` names. Under ``allow``, every object on the way is defined in an allowed
    module (checked before looking further: an attribute lookup can run code), except a final flow or
    task, which is data (it runs nothing when returned)."""
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
            hint = (
                " (a factory in __main__ resolves only where that program runs)"
                if module_name == "__main__"
                else ""
            )
            raise InvalidFlowError(
                f"factory path {path!r}: {owner} has no attribute {part!r}{hint}"
            ) from None
        if allow is None or (k == len(parts) - 1 and _as_flow(obj) is not None):
            continue
        home = _home(obj)
        if home is None or not _allowed(home, allow):
            where = repr(f"{module_name}:{'.'.join(parts[: k + 1])}")
            defined = f"is defined in module {home!r}," if home else "says no module defines it, so is"
            raise _refuse(path, allow, f"{where} {defined}")
    return obj


def resolve_factory(path: str, allow: Iterable[str] | None = None) -> FlowFactory:
    """The flow factory named by ``path`` (``"package.module:attribute"``).

    When the attribute is a flow (or a single task) rather than a callable, the factory
    returned gives that object back (and takes no arguments). ``allow``, when given, lists
    module prefixes the path must be under (``["mypkg"]`` accepts ``mypkg.flows``), and the
    factory must be defined in such a module (not just imported by one), so a job cannot make
    this process import an arbitrary module or call an arbitrary function.
    """
    prefixes = allow_list(allow)
    check_allowed(path, prefixes)
    obj = _walk(path, prefixes)
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


def factory_path(factory: Callable[..., Any]) -> str:
    """The ``"module:qualname"`` another process imports ``factory`` by; refused when there is none.

    A factory defined in the program being run is recorded as ``"__main__:name"``, as TaskFlow does:
    it resolves in any process running that same program (the program run again to resume, or a
    conductor thread beside the poster), and in no other (``module '__main__' has no attribute``).
    Under an allow list it is found only when ``"__main__"`` is allowed by name.
    """
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise InvalidFlowError(
            f"factory {factory!r} has no import path: use a module-level function or class method "
            f"(not a lambda or a nested function) so another process can import it"
        )
    path = f"{module}:{qualname}"
    if resolve_factory(path) is not factory:
        raise InvalidFlowError(f"factory {factory!r} is not what {path!r} imports to")
    return path


@dataclass(frozen=True)
class FactoryDetails:
    """How to rebuild a flow: ``name(*args, **kwargs)``, ``name`` an import path, the arguments JSON.

    Kept in ``flow_detail.meta["factory"]`` as ``{"name", "args", "kwargs"}`` (TaskFlow's layout, so
    flow details written by either read the same).
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    META_KEY = "factory"

    @classmethod
    def of(
        cls,
        factory: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> FactoryDetails:
        """The details for ``factory`` (a callable importable by path, or that path as a string)."""
        name = factory if isinstance(factory, str) else factory_path(factory)
        return cls(name, tuple(args), dict(kwargs or {}))

    @classmethod
    def from_flow_detail(cls, flow_detail: FlowDetail) -> FactoryDetails | None:
        """The details ``flow_detail`` records, or None when it names no factory (or not as a path)."""
        found = flow_detail.meta.get(cls.META_KEY)
        if not isinstance(found, Mapping) or not isinstance(found.get("name"), str):
            return None
        args, kwargs = found.get("args") or (), found.get("kwargs") or {}
        if not isinstance(args, Sequence) or isinstance(args, str) or not isinstance(kwargs, Mapping):
            raise InvalidFlowError(
                f"flow detail {flow_detail.name!r} ({flow_detail.uuid}): factory {found['name']!r} has "
                f"arguments that are not a list and a mapping: {found!r}"
            )
        return cls(found["name"], tuple(args), dict(kwargs))

    def as_meta(self) -> dict[str, Any]:
        """The JSON record kept in ``flow_detail.meta["factory"]``."""
        return {"name": self.name, "args": list(self.args), "kwargs": dict(self.kwargs)}

    def build(self, allow: Iterable[str] | None = None) -> Flow:
        """The flow, built by calling the factory (under ``allow``, see :func:`resolve_factory`)."""
        return build_flow(self.name, *self.args, allow=allow, **self.kwargs)


def save_factory_details(
    flow_detail: FlowDetail,
    factory: str | Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    backend: Backend | str | None = None,
) -> FactoryDetails:
    """Record in ``flow_detail`` how to rebuild its flow: ``factory(*args, **kwargs)``.

    ``factory`` is a callable importable by ``module:qualname`` (or that path as a string); the
    arguments must be JSON (checked with the backend's serializer before anything is recorded). With
    ``backend`` the flow detail is saved too (its logbook must be).
    """
    details = FactoryDetails.of(factory, args, kwargs)
    record = details.as_meta()
    codec = backend_for(backend).codec if backend is not None else Codec()
    codec.dump(record, f"flow {flow_detail.name}", "the factory arguments")
    flow_detail.meta[FactoryDetails.META_KEY] = record
    if backend is not None:
        with backend_for(backend).get_connection() as conn:
            conn.update_flow_details(flow_detail)
    return details
