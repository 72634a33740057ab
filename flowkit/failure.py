"""A task's exception, captured so that it can outlive the stack, the process and the machine that raised it.

A failure has to travel: from a worker process or a remote worker back to the engine, into the
persistence backend so that a flow resumed after a restart can still revert with it, and into
``revert(result, flow_failures)`` long after the frame that raised it is gone. Tracebacks do not pickle,
many exceptions do not either, and pickle in a database would tie stored flows to one version of the
code and run code on load. So :class:`Failure` keeps the facts as text (type names along the MRO,
message, traceback) that :meth:`Failure.to_dict` turns into plain JSON; the live exception rides along
only while it can, and is rebuilt on the other side only when that is safe.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterable, Iterator, Mapping
from traceback import format_tb
from types import TracebackType
from typing import Any, NoReturn, Self

from flowkit.exceptions import FlowkitError, InvalidFormat, NotAFailureError, RemoteError, WrappedFailure

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

VERSION = 1
# key -> (accepted types, their description, required); "cause", "atom_name" and "exc_args" may be absent.
# Tuples are accepted where lists are, and TaskFlow's "causes" list where flowkit writes "cause".
_FIELDS: dict[str, tuple[type | tuple[type, ...], str, bool]] = {
    "version": (int, "int", True),
    "exc_type_names": ((list, tuple), "list", True),
    "exception_str": (str, "str", True),
    "traceback_str": (str, "str", True),
    "cause": ((Mapping, type(None)), "dict or None", False),
    "causes": ((list, tuple), "list", False),
    "atom_name": ((str, type(None)), "str or None", False),
    "exc_args": ((list, tuple), "list", False),
}
_ROOT_TYPES = frozenset({"BaseException", "Exception", "builtins.BaseException", "builtins.Exception"})
"""The last of ``exc_type_names`` must be one of these: every exception derives from them."""

_KWARGS = frozenset({"exception_str", "traceback_str", "exc_type_names", "exc_args", "causes"})


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"


def _json_args(exc: BaseException) -> list[Any] | None:
    """The exception's args as plain JSON data, or None when they do not serialize."""
    try:
        return list(json.loads(json.dumps(list(exc.args), allow_nan=False)))
    except (TypeError, ValueError, RecursionError):
        return None


def _find_exception_class(name: str) -> type[Exception] | None:
    """The Exception subclass whose qualified name is ``name``, from modules already imported.

    Failure dicts arrive from databases and message brokers: naming a module must not make
    this process import (and so run) it.
    """
    parts = name.split(".")
    if "<locals>" in parts:
        return None
    for split in range(len(parts) - 1, 0, -1):
        obj: Any = sys.modules.get(".".join(parts[:split]))
        if obj is None:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
        if isinstance(obj, type) and issubclass(obj, Exception) and _qualified_name(obj) == name:
            return obj
        return None
    return None


def _rebuild_exception(type_names: list[str], exc_args: list[Any] | None, text: str) -> BaseException | None:
    """``cls(*exc_args)`` when that gives back the same exception (same type and message), else None."""
    if exc_args is None:
        return None
    cls = _find_exception_class(type_names[0])
    if cls is None:
        return None
    try:
        exc = cls(*exc_args)
        return exc if str(exc) == text else None
    except Exception:
        return None


def _validate(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidFormat(
            f"failure data {where or '(top level)'} must be a dict, got {type(data).__name__}"
        )
    for key, (types, expected, required) in _FIELDS.items():
        if key not in data:
            if required:
                raise InvalidFormat(f"failure dict is missing key {where + key!r}")
            continue
        value = data[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise InvalidFormat(
                f"failure dict key {where + key!r} must be {expected}, got {type(value).__name__}"
            )
    if data["version"] != VERSION:
        raise InvalidFormat(
            f"failure dict key {where + 'version'!r} is {data['version']}; this reads {VERSION}"
        )
    names = data["exc_type_names"]
    if not names or not all(isinstance(n, str) for n in names):
        raise InvalidFormat(f"failure dict key {where + 'exc_type_names'!r} must be a non-empty list of str")
    return data


def _cause_data(data: Mapping[str, Any]) -> object:
    """The cause's dict: flowkit's ``cause``, else the first of TaskFlow's ``causes``."""
    if data.get("cause") is not None:
        return data["cause"]
    causes = data.get("causes")
    return causes[0] if causes else None


def _qualified_type_names(names: Iterable[str]) -> tuple[str, ...]:
    """TaskFlow's short names (``RuntimeError``) as flowkit's (``builtins.RuntimeError``), through
    BaseException, so that a failure made from either compares equal."""
    out = tuple(n if "." in n else f"builtins.{n}" for n in names)
    if out and out[-1] == "builtins.Exception":
        out += ("builtins.BaseException",)
    return out


def _pickled(exc: BaseException | None) -> bytes | None:
    try:
        return pickle.dumps(exc) if exc is not None else None
    except Exception:  # locks, sockets, lambdas...: keep only the text
        return None


def _unpickled(data: bytes | None) -> BaseException | None:
    try:
        exc = pickle.loads(data) if data is not None else None
    except Exception:  # e.g. a custom __init__ that pickle cannot call again
        return None
    return exc if isinstance(exc, BaseException) else None


def _exc_info_of(exc_info: ExcInfo | None) -> ExcInfo:
    """``exc_info`` checked, or the exception being handled now."""
    if exc_info is None:
        exc = sys.exception()
        if exc is None:
            raise NotAFailureError(
                "Failure() needs an exception: call it inside an except block or use Failure.from_exception"
            )
        return (type(exc), exc, exc.__traceback__)
    if len(exc_info) != 3:
        raise InvalidFormat(f"exc_info must be (type, exception, traceback), got {exc_info!r}")
    if not isinstance(exc_info[1], BaseException):
        raise NotAFailureError(f"exc_info holds no exception: {exc_info!r}")
    return exc_info


class Failure:
    """One exception: its type names, message, traceback text and cause, plus the live object if any."""

    atom_name: str | None
    """The atom that failed; set by the engine."""

    _exception: BaseException | None
    _exc_info: ExcInfo | None
    _cause: Failure | None

    def __init__(self, exc_info: ExcInfo | None = None, **kwargs: Any) -> None:
        """``Failure()`` in an except block, ``Failure(sys.exc_info())``, or TaskFlow's keyword form.

        The keyword form rebuilds a failure from its facts without a live exception:
        ``Failure(exception_str=..., traceback_str=..., exc_type_names=[...], exc_args=(...),
        causes=(failure, ...))``; type names may be TaskFlow's short ones (``"RuntimeError"``).
        """
        if kwargs:
            self._from_kwargs(exc_info, kwargs)
            return
        exc_info = _exc_info_of(exc_info)
        if not isinstance(exc_info[1], Exception):
            raise NotAFailureError(
                f"{exc_info[0].__name__} is not a task failure: Failure() captures an Exception "
                "(SystemExit, KeyboardInterrupt and GeneratorExit are left to propagate)"
            )
        self._capture(exc_info, set())

    @classmethod
    def from_base_exception(cls, exc_info: ExcInfo | None = None) -> Self:
        """Capture any exception, SystemExit and KeyboardInterrupt included (the current one when
        ``exc_info`` is None).

        For the engine's pool threads: such an exception raised by a task cannot be acted on there,
        so it travels to the scheduler as a failure, the flow is reverted, and ``run()`` raises it
        again in the caller's thread. Code capturing a task's error uses ``Failure()``.
        """
        failure = object.__new__(cls)
        failure._capture(_exc_info_of(exc_info), set())
        return failure

    def _from_kwargs(self, exc_info: ExcInfo | None, kwargs: dict[str, Any]) -> None:
        unknown = [k for k in kwargs if k not in _KWARGS]
        if unknown:
            raise TypeError(f"Failure.__init__ got unexpected keyword argument(s): {', '.join(unknown)}")
        if "exception_str" not in kwargs:
            raise TypeError("Failure.__init__ needs exception_str= in its keyword form")
        causes = tuple(kwargs.get("causes") or ())
        exc = exc_info[1] if exc_info is not None else None
        self._exception = exc
        self._exc_info = exc_info
        self._exc_type_names = _qualified_type_names(kwargs.get("exc_type_names") or ())
        self._exception_str = str(kwargs["exception_str"])
        self._traceback_str = kwargs.get("traceback_str") or ""
        self._exc_args = list(kwargs["exc_args"]) if kwargs.get("exc_args") is not None else None
        self.atom_name = None
        self._cause = causes[0] if causes else None

    @classmethod
    def from_exception(cls, exc: BaseException) -> Self:
        """Capture ``exc`` (with its traceback, if it was raised); as ``Failure()``, only an Exception."""
        if not isinstance(exc, BaseException):
            raise NotAFailureError(f"Failure.from_exception needs an exception, got {exc!r}")
        return cls(exc_info=(type(exc), exc, exc.__traceback__))

    def _capture(self, exc_info: ExcInfo, seen: set[int]) -> None:
        exc_type, exc, tb = exc_info
        if exc is None:
            raise FlowkitError("Failure needs an exception, got an exc_info without one")
        seen.add(id(exc))
        self._exception = exc
        self._exc_info = (exc_type, exc, tb)
        self._exc_type_names = tuple(_qualified_name(c) for c in type(exc).__mro__ if c is not object)
        self._exception_str = _safe_str(exc)
        self._traceback_str = "".join(format_tb(tb)) if tb is not None else ""
        self._exc_args = _json_args(exc)
        self.atom_name = None
        self._cause = None
        nxt = exc.__cause__
        if nxt is None and not exc.__suppress_context__:
            nxt = exc.__context__
        if nxt is not None and id(nxt) not in seen:  # chains can be made to loop
            self._cause = object.__new__(type(self))
            self._cause._capture((type(nxt), nxt, nxt.__traceback__), seen)

    def _restore(self, data: Mapping[str, Any], cause: Failure | None, exc: BaseException | None) -> None:
        self._exception = exc
        self._exc_info = (type(exc), exc, None) if exc is not None else None
        self._exc_type_names = _qualified_type_names(data["exc_type_names"])
        self._exception_str = data["exception_str"]
        self._traceback_str = data["traceback_str"]
        self._exc_args = list(data["exc_args"]) if data.get("exc_args") is not None else None
        self.atom_name = data.get("atom_name")
        self._cause = cause
        if exc is not None and cause is not None and cause.exception is not None and exc.__cause__ is None:
            exc.__cause__ = cause.exception

    @property
    def exception(self) -> BaseException | None:
        """The live exception, or None when it could not be carried or rebuilt."""
        return self._exception

    @property
    def exc_info(self) -> ExcInfo | None:
        """``(type, exception, traceback)``; the traceback is None once the failure was serialized."""
        return self._exc_info

    @property
    def exception_str(self) -> str:
        return self._exception_str

    @property
    def traceback_str(self) -> str:
        """The formatted stack frames (without the final ``Type: message`` line), "" if none."""
        return self._traceback_str

    @property
    def exc_type_names(self) -> tuple[str, ...]:
        """Qualified class names along the MRO, most specific first, without ``object``."""
        return self._exc_type_names

    @property
    def cause(self) -> Failure | None:
        """The failure this one was raised from (``__cause__``, else unsuppressed ``__context__``)."""
        return self._cause

    @property
    def causes(self) -> tuple[Failure, ...]:
        """The whole chain below this failure, nearest first: ``(cause, cause.cause, ...)`` (TaskFlow's)."""
        chain: list[Failure] = []
        failure = self._cause
        while failure is not None:
            chain.append(failure)
            failure = failure._cause
        return tuple(chain)

    @property
    def exception_args(self) -> tuple[Any, ...]:
        """The exception's ``args`` as a tuple; empty when they were not JSON data and so not kept."""
        return tuple(self._exc_args) if self._exc_args is not None else ()

    def __iter__(self) -> Iterator[str]:
        """The type names in TaskFlow's form: builtins without ``builtins.``, up to ``Exception``."""
        for name in self._exc_type_names:
            if name == "builtins.BaseException" and "builtins.Exception" in self._exc_type_names:
                return
            yield name.removeprefix("builtins.")

    def copy(self) -> Self:
        """A new failure with the same facts, cause chain and live exception (if any)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other

    @classmethod
    def validate(cls, data: object) -> None:
        """Raise :class:`~flowkit.exceptions.InvalidFormat` naming the problem unless ``data`` is a
        failure dict (flowkit's :meth:`to_dict` form, or TaskFlow's), causes included."""
        where = ""
        current: object = data
        while current is not None:
            checked = _validate(current, where)
            root = checked["exc_type_names"][-1]
            if root not in _ROOT_TYPES:
                # only here: from_dict still reads such data (refusing it would lose a stored failure)
                raise InvalidFormat(
                    f"failure dict key {where + 'exc_type_names'!r} must end with Exception or "
                    f"BaseException, got {root!r}"
                )
            current = _cause_data(checked)
            where += "cause."

    def check(self, *exc_types: type[BaseException] | str) -> type[BaseException] | str | None:
        """Return the first of ``exc_types`` this failure is an instance of, else None.

        Types are matched by qualified name, so this works for failures rebuilt from dicts too; a name
        without a dot means a builtin (``"KeyError"`` is ``"builtins.KeyError"``), as in TaskFlow.
        """
        for exc_type in exc_types:
            name = exc_type if isinstance(exc_type, str) else _qualified_name(exc_type)
            if "." not in name:
                name = f"builtins.{name}"
            if name in self._exc_type_names:
                return exc_type
        return None

    def reraise(self) -> NoReturn:
        """Raise the original exception, or :class:`RemoteError` when only its text survived."""
        if self._exception is not None:
            tb = self._exc_info[2] if self._exc_info is not None else None
            raise self._exception.with_traceback(tb)
        type_name = self._exc_type_names[0] if self._exc_type_names else "builtins.Exception"
        raise RemoteError(type_name, self._exception_str, self._traceback_str, self)

    @staticmethod
    def reraise_if_any(failures: Iterable[Failure]) -> None:
        """Nothing for no failures, re-raise a single one, :class:`WrappedFailure` for several."""
        failures = list(failures)
        if len(failures) == 1:
            failures[0].reraise()
        if failures:
            raise WrappedFailure(failures)

    def to_dict(self, include_args: bool = True) -> dict[str, Any]:
        """Plain JSON data; ``exc_args`` is present only when the exception's args serialize (and
        ``include_args`` is true)."""
        data: dict[str, Any] = {
            "version": VERSION,
            "exc_type_names": list(self._exc_type_names),
            "exception_str": self._exception_str,
            "traceback_str": self._traceback_str,
            "cause": self._cause.to_dict(include_args) if self._cause is not None else None,
            "atom_name": self.atom_name,
        }
        if include_args and self._exc_args is not None:
            data["exc_args"] = list(self._exc_args)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict` output; a malformed dict raises FlowkitError naming the key."""
        return cls._from_dict(data, "")

    @classmethod
    def _from_dict(cls, data: object, where: str) -> Self:
        checked = _validate(data, where)
        raw_cause = _cause_data(checked)
        cause = cls._from_dict(raw_cause, f"{where}cause.") if raw_cause is not None else None
        names = list(_qualified_type_names(checked["exc_type_names"]))
        exc_args = list(checked["exc_args"]) if checked.get("exc_args") is not None else None
        exc = _rebuild_exception(names, exc_args, checked["exception_str"])
        failure = object.__new__(cls)
        failure._restore(checked, cause, exc)
        return failure

    def __getstate__(self) -> dict[str, Any]:
        state = self.to_dict()
        state["cause"] = self._cause  # pickled through this method too, so its exception may survive
        state["exception_pickle"] = _pickled(self._exception)  # tracebacks never pickle: dropped
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        exc = _unpickled(state["exception_pickle"])
        if exc is None:
            exc = _rebuild_exception(state["exc_type_names"], state.get("exc_args"), state["exception_str"])
        self._restore(state, state["cause"], exc)

    def _same(self, other: Failure, tracebacks: bool) -> bool:
        if self._exc_type_names != other._exc_type_names or self._exception_str != other._exception_str:
            return False
        if tracebacks and self._traceback_str != other._traceback_str:
            return False
        if self._cause is None or other._cause is None:
            return self._cause is None and other._cause is None
        return self._cause._same(other._cause, tracebacks)

    def matches(self, other: object) -> bool:
        """Same type names, message and cause chain as ``other``, whatever the tracebacks."""
        return isinstance(other, Failure) and self._same(other, tracebacks=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Failure):
            return NotImplemented
        return self._same(other, tracebacks=True)

    def _summary(self) -> str:
        """``Type: message`` (just the message when no type is known)."""
        if not self._exc_type_names:
            return self._exception_str
        name = self._exc_type_names[0].removeprefix("builtins.")
        return f"{name}: {self._exception_str}" if self._exception_str else name

    @property
    def summary(self) -> str:
        """``RuntimeError: Woot!``: the type and message, as listeners print them."""
        return self._summary()

    def __str__(self) -> str:
        """``Failure: RuntimeError: Woot!``, as in TaskFlow."""
        return f"Failure: {self._summary()}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._summary()})"

    def pformat(self, traceback: bool = False) -> str:
        """Readable text: type and message, the traceback if asked, then each cause the same way."""
        lines = [f"Failure in atom {self.atom_name!r}: {self._summary()}" if self.atom_name else str(self)]
        failure: Failure | None = self
        while failure is not None:
            if failure is not self:
                lines.append(f"Caused by: {failure._summary()}")
            if traceback:
                if failure.traceback_str:
                    lines.append("Traceback (most recent call last):")
                    lines.append(failure.traceback_str.rstrip("\n"))
                else:
                    lines.append("Traceback not available.")
            failure = failure.cause
        return "\n".join(lines)
