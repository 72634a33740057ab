"""The atom: the smallest unit a flow is made of (a task or a retry controller).

An atom declares what it needs and what it gives by the names of its
``execute`` arguments and its ``provides``; flows are wired from these names,
never by hand. Everything here is worked out once, when the atom is built, so
the engine's hot loop only looks values up.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, NoReturn

from flowkit.exceptions import InvalidFlowError, InvalidFlowTypeError
from flowkit.names import check_name

#: ``provides`` as given by a user: one name, names by position, or names by dict key.
ProvidesSpec = str | tuple[str, ...] | list[str] | set[str] | frozenset[str] | None
RebindSpec = Mapping[str, str] | Iterable[str] | None

_WHOLE = None  # extractor key meaning "the whole result" (TaskFlow's ``save_as`` value for it)


class Names(AbstractSet[str]):
    """An immutable set of symbol names that keeps the order they were declared in.

    ``Atom.provides`` is one: it compares equal to a ``set`` of the same names (as TaskFlow's
    ordered sets do), and iterates in declaration order (positions matter for tuple results).
    """

    __slots__ = ("_order", "_set")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._order: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._set = frozenset(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._set

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __hash__(self) -> int:
        return hash(self._set)

    def __getstate__(self) -> tuple[str, ...]:
        return self._order

    def __setstate__(self, state: tuple[str, ...]) -> None:
        self._order = state
        self._set = frozenset(state)

    def __repr__(self) -> str:
        return f"Names({list(self._order)!r})"


def version_text(version: object) -> str:
    """A version as people write it: ``(1, 0)`` (how tasks declare it) is ``"1.0"``."""
    if isinstance(version, tuple | list):
        return ".".join(str(part) for part in version)
    return str(version)


def class_name(obj: object) -> str:
    """``module.QualName`` of an object's class (or of a function)."""
    target = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj)
    module = getattr(target, "__module__", None) or ""
    qual = str(getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target)))
    return f"{module}.{qual}" if module and module != "builtins" else qual


class Arguments:
    """How a callable's parameters are bound from storage, worked out from its signature.

    ``required`` and ``optional`` map parameter name -> symbol name; ``takes_kwargs`` says
    whether extra symbols (from ``requires``) can be passed as keyword arguments.
    """

    __slots__ = ("optional", "positional", "required", "takes_kwargs")

    def __init__(self, fn: Callable[..., Any], skip: Iterable[str] = ()) -> None:
        skipped = frozenset(skip)
        self.positional: list[str] = []
        self.required: dict[str, str] = {}
        self.optional: dict[str, str] = {}
        self.takes_kwargs = False
        for param in inspect.signature(fn).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                self.takes_kwargs = True
                continue
            if param.kind is param.VAR_POSITIONAL or param.name in skipped:
                continue
            self.positional.append(param.name)
            if param.default is param.empty:
                self.required[param.name] = param.name
            else:
                self.optional[param.name] = param.name


def rebind_pairs(
    rebind: Mapping[str, Any] | Iterable[Any], args: Arguments, method: str, error: Callable[[str], Exception]
) -> list[tuple[str, Any]]:
    """(parameter, symbol) pairs of a rebind given as a mapping, or as a list in parameter order;
    symbols listed past the parameters go to ``**kwargs`` under their own names. ``error`` builds the
    exception for a list longer than ``method`` takes (it gets the message without the atom's name)."""
    if isinstance(rebind, Mapping):
        return list(rebind.items())
    if not isinstance(rebind, list | tuple):
        raise InvalidFlowTypeError(
            f"Invalid rebind value {rebind!r} ({type(rebind).__name__}): give a dict or a list of symbols"
        )
    names = list(rebind)
    if len(names) > len(args.positional) and not args.takes_kwargs:
        raise error(
            f"Extra arguments given: rebind lists {len(names)} symbols but {method} takes "
            f"{len(args.positional)} arguments ({', '.join(args.positional) or 'none'})"
        )
    extra = names[len(args.positional) :]
    return list(zip([*args.positional, *extra], names, strict=False))


_SIGNATURES: dict[tuple[Any, frozenset[str]], tuple[Arguments, frozenset[str]]] = {}


def _arguments(fn: Callable[..., Any], skip: frozenset[str]) -> tuple[Arguments, frozenset[str]]:
    """``Arguments`` of ``fn`` and its parameter names, worked out once per function.

    ``inspect.signature`` costs tens of microseconds; a flow of 100,000 tasks of a few classes
    should not pay it 100,000 times.
    """
    # Only methods are remembered (they live as long as their class); plain functions, such
    # as a FunctorTask's lambdas, are worked out each time rather than kept alive here.
    method = getattr(fn, "__func__", None)
    if method is not None:
        cached = _SIGNATURES.get((method, skip))
        if cached is not None:
            return cached
    args = Arguments(fn, skip=skip)
    names = frozenset(inspect.signature(fn).parameters)
    if method is not None:
        _SIGNATURES[(method, skip)] = (args, names)
    return args, names


def _normalize_provides(atom_name: str, provides: ProvidesSpec) -> dict[str, Any]:
    """Map each provided symbol to how it is taken out of the result."""
    if provides is None:
        return {}
    if isinstance(provides, str):
        return {provides: _WHOLE}
    if isinstance(provides, tuple | list):
        out: dict[str, Any] = {}
        for i, name in enumerate(provides):
            if not isinstance(name, str):
                raise InvalidFlowError(f"atom {atom_name!r}: provides entries must be str, got {name!r}")
            if name in out:
                raise InvalidFlowError(f"atom {atom_name!r} provides {name!r} twice")
            out[name] = i
        return out
    if isinstance(provides, set | frozenset):
        for name in provides:
            if not isinstance(name, str):
                raise InvalidFlowError(f"atom {atom_name!r}: provides entries must be str, got {name!r}")
        return {name: name for name in sorted(provides)}
    raise InvalidFlowTypeError(
        f"Atom provides must be a str, a tuple/list or a set of str (atom {atom_name!r}), got {provides!r}"
    )


def extract(result: Any, key: Any, atom_name: str, symbol: str) -> Any:
    """Take ``symbol``'s value out of an atom's result (whole, by position, or by dict key)."""
    if key is _WHOLE:
        return result
    try:
        return result[key]
    except (LookupError, TypeError) as exc:
        kind = "index" if isinstance(key, int) else "key"
        raise InvalidFlowError(
            f"atom {atom_name!r} should provide {symbol!r} as {kind} {key!r} of its result, "
            f"but its result {type(result).__name__} has none ({exc})"
        ) from None


WANTS_RESULT_AND_FAILURES = frozenset({"result", "flow_failures"})
"""The ``_revert_wants`` of the usual ``revert(self, *args, **kwargs)``."""
_WANTS: dict[frozenset[str], frozenset[str]] = {WANTS_RESULT_AND_FAILURES: WANTS_RESULT_AND_FAILURES}
"""One object per distinct ``_revert_wants``, so that the serial engine's revert wave tells them apart by
identity (see :mod:`flowkit.engines.revert`); a copy that is not this object (an unpickled atom) only
takes the general route there."""


class _NoArgs(dict[str, Any]):
    """The empty argument mapping (``inject_kwargs``, ``required_rebind``, ...) that every atom whose
    mapping holds nothing shares, as most do: a large flow then reads one hot object instead of an empty
    dict per atom and mapping, cold, when it compiles and runs (graph chain of 10,000 atoms: a tenth
    less time per task), and keeps ~320 bytes less per atom. Read-only, so that no atom changes the
    others': one that must change its own makes a dict first (``Task``'s ``revert_rebind``). Pickled
    and copied as the one object."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an atom's empty argument mapping is shared and read-only: assign a new dict")

    __setitem__ = __delitem__ = pop = popitem = clear = update = setdefault = __ior__ = _read_only

    def __reduce__(self) -> tuple[Callable[[], _NoArgs], tuple[()]]:
        return _no_args, ()

    def __copy__(self) -> _NoArgs:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _NoArgs:
        return self


NO_ARGS = _NoArgs()


def _no_args() -> _NoArgs:
    """The shared empty argument mapping (how it unpickles)."""
    return NO_ARGS


def check_timeout(timeout: Any, what: str) -> float | None:
    """``timeout`` as float seconds (None: unbounded); InvalidFlowError unless positive and finite."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        raise InvalidFlowError(f"{what}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class Atom:
    """Base of :class:`~flowkit.task.Task` and :class:`~flowkit.retry.Retry`.

    Subclasses implement ``execute`` (and usually ``revert``). The constructor binds
    their arguments: by default each parameter of ``execute`` is the symbol of the same
    name; ``rebind`` renames (``{"arg": "symbol"}``, or a list in parameter order);
    ``inject`` gives atom-local values; ``requires`` adds symbols passed as keywords;
    ``provides`` names the result (str: whole; tuple/list: by position; set: by dict key);
    ``timeout`` bounds each execute and revert, in seconds (see :class:`~flowkit.exceptions.AtomTimeout`).
    """

    default_provides: ProvidesSpec = None
    #: a Task's own notifier once something asked for it (see ``Task.notifier``); None on the class so
    #: that the engine's check per call is one attribute read
    _notifier: Any = None
    priority: int = 0
    """Among atoms ready at the same time, higher priorities start first (TaskFlow's ``priority``)."""
    #: parameters of execute/revert that the engine fills itself, not from storage
    _special_args: frozenset[str] = frozenset()
    _revert_special_args: frozenset[str] = frozenset({"result", "flow_failures"})
    # Declared, not defined: Task and Retry define them (each with its own signature); an Atom
    # without them is not runnable, and binding says so by failing on the missing attribute.
    execute: Callable[..., Any]
    revert: Callable[..., Any]

    def __init__(
        self,
        name: str | None = None,
        provides: ProvidesSpec = None,
        requires: Iterable[str] | None = None,
        rebind: RebindSpec = None,
        inject: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.name: str = name if name is not None else class_name(self)
        if not isinstance(self.name, str) or not self.name:
            raise InvalidFlowError(f"atom name must be a non-empty str, got {self.name!r}")
        check_name(self.name, "atom name")  # persistence stores it: no NUL, no lone surrogate
        self.timeout: float | None = check_timeout(timeout, f"atom {self.name!r}")
        """Seconds its execute (and its revert) may take; past that it fails with AtomTimeout, on every
        engine (see ``docs/waits-timeouts-async.md`` for what happens to the call itself)."""
        self.inject: dict[str, Any] = dict(inject or {})
        if provides is None:
            provides = self.default_provides
        self.save_as: dict[str, Any] = _normalize_provides(self.name, provides)
        self.provides: Names = Names(self.save_as)
        if isinstance(requires, str):  # one symbol, as TaskFlow accepts; not its characters
            requires = (requires,)
        self._bind(requires, rebind)

    # -- binding ---------------------------------------------------------------------------------

    def _execute_callable(self) -> Callable[..., Any]:
        return self.execute

    def _revert_callable(self) -> Callable[..., Any]:
        return self.revert

    def _bind(self, requires: Iterable[str] | None, rebind: RebindSpec) -> None:
        args, _ = _arguments(self._execute_callable(), self._special_args)
        mapping: dict[str, str] = {**args.required, **args.optional}
        if rebind is not None:
            items = rebind_pairs(
                rebind, args, "execute", lambda m: InvalidFlowError(f"{m} (atom {self.name!r})")
            )
            for arg, symbol in items:
                if arg not in mapping and not args.takes_kwargs:
                    raise InvalidFlowError(
                        f"Extra arguments given to atom {self.name!r}: rebind names argument {arg!r}, "
                        f"which execute does not take (it takes {', '.join(args.positional) or 'nothing'})"
                    )
                if not isinstance(symbol, str):
                    raise InvalidFlowError(f"atom {self.name!r}: rebind target must be a str, got {symbol!r}")
                mapping[arg] = symbol
        explicit: set[str] = set()  # optional parameters that ``requires`` makes required
        for symbol in requires or ():
            if symbol not in mapping:
                if not args.takes_kwargs and symbol not in args.positional:
                    raise InvalidFlowError(
                        f"Extra arguments given to atom {self.name!r}: requires names {symbol!r}, but "
                        f"execute neither takes an argument of that name nor **kwargs"
                    )
                mapping[symbol] = symbol
            elif symbol in args.optional:
                explicit.add(symbol)
        # ``inject`` is keyed by symbol (as in TaskFlow): an injected symbol is bound from it,
        # not from storage; keys that no argument is bound to are ignored.
        inject = self.inject
        #: parameter -> injected value, for execute
        self.inject_kwargs: dict[str, Any] = {
            a: inject[s] for a, s in mapping.items() if s in inject
        } or NO_ARGS
        optional = {a for a in args.optional if a not in explicit}
        #: parameter -> symbol, for parameters that must be bound
        self.required_rebind: dict[str, str] = {
            a: s for a, s in mapping.items() if a not in optional and s not in inject
        } or NO_ARGS
        #: parameter -> symbol, for parameters that have defaults (bound only when available)
        self.optional_rebind: dict[str, str] = {
            a: s for a, s in mapping.items() if a in optional and s not in inject
        } or NO_ARGS

        revert_args, revert_params = _arguments(self._revert_callable(), self._revert_special_args)
        self._revert_takes_kwargs = revert_args.takes_kwargs
        #: which of result / flow_failures the revert callable accepts
        wants = frozenset(
            n for n in self._revert_special_args if n in revert_params or revert_args.takes_kwargs
        )
        self._revert_wants: frozenset[str] = _WANTS.setdefault(wants, wants)
        required: dict[str, str] = {}
        optional_args: dict[str, str] = {}
        injected: dict[str, Any] = {}
        for arg in revert_args.positional:
            symbol = mapping.get(arg, arg)
            if symbol in inject:
                injected[arg] = inject[symbol]
            elif arg in revert_args.required:
                required[arg] = symbol
            else:
                optional_args[arg] = symbol
        self.revert_required_rebind: dict[str, str] = required or NO_ARGS
        self.revert_optional_rebind: dict[str, str] = optional_args or NO_ARGS
        #: parameter -> injected value, for revert
        self.revert_inject_kwargs: dict[str, Any] = injected or NO_ARGS

    @property
    def rebind(self) -> dict[str, str]:
        """``execute``'s parameter -> symbol, required ones first, then those with defaults
        (TaskFlow's ``rebind``); injected parameters are not listed."""
        return {**self.required_rebind, **self.optional_rebind}

    @property
    def revert_rebind(self) -> dict[str, str]:
        """``revert``'s parameter -> symbol (TaskFlow's ``revert_rebind``), as :attr:`rebind`."""
        return {**self.revert_required_rebind, **self.revert_optional_rebind}

    @property
    def requires(self) -> frozenset[str]:
        """Symbols this atom cannot run without (for execute or for revert)."""
        revert = self.revert_required_rebind
        if not revert:  # most reverts take nothing from storage: one frozenset, no union (read per compile)
            return frozenset(self.required_rebind.values())
        return frozenset((*self.required_rebind.values(), *revert.values()))

    @property
    def optional(self) -> frozenset[str]:
        """Symbols ``execute`` uses when some atom or the store provides them (TaskFlow's ``optional``)."""
        return frozenset(self.optional_rebind.values())

    @property
    def revert_optional(self) -> frozenset[str]:
        """Symbols ``revert`` uses when they are available (TaskFlow's ``revert_optional``)."""
        return frozenset(self.revert_optional_rebind.values())

    #: the atom's version (TaskFlow's ``Atom.version``), shown in ``str()`` and kept with its details
    version: tuple[int, ...] = (1, 0)

    def __str__(self) -> str:
        """``"name==1.0"``: the name and version, as TaskFlow prints an atom."""
        return f'"{self.name}=={".".join(str(v) for v in self.version)}"'

    def __repr__(self) -> str:
        return f"<{class_name(self)} {self}>"
