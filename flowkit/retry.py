"""Retry controllers: atoms that decide what happens when their subflow fails.

A retry controller is attached to a flow (``LinearFlow("build", retry=Times(3))``) and
runs before the flow's atoms; its result is provided like a task's (the attempt
number, the next value to try...). When an atom inside the flow fails, the flow's
atoms that ran are reverted, then :meth:`Retry.on_failure` returns a
:class:`Decision`: run the flow again, give the failure to the enclosing flow, or
revert everything.

Unlike TaskFlow, a controller may wait between attempts: ``delay`` seconds before
the second attempt, multiplied by ``backoff`` for each further one, capped at
``max_delay``, with up to ``jitter`` (a fraction) added at random so that many
flows failing together do not retry in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from enum import StrEnum
from typing import Any

from flowkit.atom import Atom, ProvidesSpec, RebindSpec
from flowkit.exceptions import InvalidFlowError, NotFound
from flowkit.failure import Failure


class Decision(StrEnum):
    """What a retry controller decides after a failure in its subflow."""

    RETRY = "RETRY"
    """Revert the subflow, then run it (and this controller) again."""
    REVERT = "REVERT"
    """Revert the subflow and this controller; the enclosing flow's controller decides next."""
    REVERT_ALL = "REVERT_ALL"
    """Revert the whole flow, whatever the enclosing controllers would decide."""


RETRY = Decision.RETRY
REVERT = Decision.REVERT
REVERT_ALL = Decision.REVERT_ALL


class History:
    """The attempts of one retry controller: ``(result, {atom_name: Failure})`` per attempt.

    ``failure`` is set when the controller's own ``execute`` failed.
    """

    __slots__ = ("_attempts", "failure")

    def __init__(
        self, attempts: Iterable[tuple[Any, Mapping[str, Failure]]] = (), failure: Failure | None = None
    ) -> None:
        self._attempts: list[tuple[Any, dict[str, Failure]]] = [(r, dict(f)) for r, f in attempts]
        self.failure = failure

    def __len__(self) -> int:
        return len(self._attempts)

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Failure]]]:
        return iter(self._attempts)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Failure]]:
        return self._attempts[index]

    def __repr__(self) -> str:
        return f"History({self._attempts!r})"

    def provides_iter(self) -> Iterator[Any]:
        """The result the controller provided on each attempt."""
        for result, _ in self._attempts:
            yield result

    def outcomes_iter(self) -> Iterator[tuple[Any, dict[str, Failure]]]:
        return iter(self._attempts)

    def caused_by(self, exc_type: type[BaseException] | str, include_retry: bool = False) -> bool:
        """Whether any attempt failed with ``exc_type``."""
        if include_retry and self.failure is not None and self.failure.check(exc_type):
            return True
        return any(f.check(exc_type) for _, failures in self._attempts for f in failures.values())

    # engine-side bookkeeping
    def _start_attempt(self, result: Any) -> None:
        self._attempts.append((result, {}))

    def _record_failures(self, failures: Mapping[str, Failure]) -> None:
        if not self._attempts:
            self._attempts.append((None, {}))
        self._attempts[-1][1].update(failures)


class Retry(Atom):
    """Base of retry controllers. Subclasses implement ``on_failure`` (and usually ``execute``)."""

    _special_args = frozenset({"history"})
    _revert_special_args = frozenset({"history", "result", "flow_failures"})

    def __init__(
        self,
        name: str | None = None,
        provides: ProvidesSpec = None,
        requires: Iterable[str] | None = None,
        rebind: RebindSpec = None,
        inject: Mapping[str, Any] | None = None,
        delay: float = 0.0,
        backoff: float = 2.0,
        max_delay: float | None = None,
        jitter: float = 0.0,
    ) -> None:
        super().__init__(name=name, provides=provides, requires=requires, rebind=rebind, inject=inject)
        #: True when no name was given: the flow it is attached to names it ``<flow>_retry`` (as in
        #: TaskFlow), so two unnamed controllers in one flow tree do not clash on their class name.
        self.default_named = name is None
        if delay < 0 or backoff < 1 or jitter < 0 or (max_delay is not None and max_delay < 0):
            raise InvalidFlowError(
                f"retry {self.name!r}: need delay >= 0, backoff >= 1, jitter >= 0 and max_delay >= 0; "
                f"got delay={delay}, backoff={backoff}, jitter={jitter}, max_delay={max_delay}"
            )
        self.delay = delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.jitter = jitter

    def execute(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Called before each attempt of the subflow; the result is what this controller provides."""
        return len(history) + 1

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        raise NotImplementedError(f"retry controller {self.name!r} must implement on_failure()")

    def revert(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Called when the subflow is given up on (REVERT or REVERT_ALL)."""
        return None

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        if self.delay <= 0 or attempt < 2:
            return 0.0
        wait = self.delay * self.backoff ** (attempt - 2)
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        if self.jitter:
            wait += wait * self.jitter * random.random()
        return wait


class _GiveUp(Retry):
    """Shared revert strategy: ``revert_all`` picks REVERT_ALL over REVERT when giving up."""

    def __init__(self, *, revert_all: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.revert_all = revert_all

    def _give_up(self) -> Decision:
        return REVERT_ALL if self.revert_all else REVERT


class Times(_GiveUp):
    """Run the subflow up to ``attempts`` times; provides the attempt number (1, 2, ...)."""

    def __init__(
        self, attempts: int = 1, name: str | None = None, provides: ProvidesSpec = None, **kwargs: Any
    ) -> None:
        # 0 is accepted as TaskFlow does: like 1, the first failure is not retried.
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise InvalidFlowError(f"Times needs attempts >= 0, got {attempts!r}")
        super().__init__(name=name, provides=provides, **kwargs)
        self.attempts = attempts

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        return RETRY if len(history) < self.attempts else self._give_up()

    def execute(self, history: History, *args: Any, **kwargs: Any) -> int:
        return len(history) + 1


class ForEach(_GiveUp):
    """Try the subflow with each of ``values`` in turn (provided under ``provides``)."""

    def __init__(
        self,
        values: Sequence[Any] | AbstractSet[Any],
        name: str | None = None,
        provides: ProvidesSpec = None,
        **kwargs: Any,
    ) -> None:
        # A set is tried in its iteration order (TaskFlow accepts one too); a str is refused, as
        # trying each of its characters is almost never what was meant.
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | AbstractSet):
            raise InvalidFlowError(f"ForEach needs a sequence or set of values, got {values!r}")
        super().__init__(name=name, provides=provides, **kwargs)
        self.values = list(values)

    def _values(self, kwargs: Mapping[str, Any]) -> list[Any]:
        return self.values

    def execute(self, history: History, *args: Any, **kwargs: Any) -> Any:
        values = self._values(kwargs)
        tried = len(history)
        if tried >= len(values):
            raise NotFound(
                f"No elements left in the values of retry {self.name!r} ({len(values)} given, all tried)"
            )
        return values[tried]

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        return RETRY if len(history) < len(self._values(kwargs)) else self._give_up()


class ParameterizedForEach(ForEach):
    """Like :class:`ForEach`, with the values taken from storage (``rebind=["zones"]``)."""

    def __init__(self, name: str | None = None, provides: ProvidesSpec = None, **kwargs: Any) -> None:
        super().__init__(values=[], name=name, provides=provides, **kwargs)

    def _values(self, kwargs: Mapping[str, Any]) -> list[Any]:
        values = kwargs.get("values")
        if values is None or isinstance(values, str | bytes):
            raise InvalidFlowError(f"retry {self.name!r} needs a sequence bound to 'values', got {values!r}")
        return list(values)

    def execute(self, history: History, values: Sequence[Any]) -> Any:
        return super().execute(history, values=values)

    def on_failure(self, history: History, values: Sequence[Any]) -> Decision:
        return super().on_failure(history, values=values)


class AlwaysRevert(Retry):
    """Never retry: revert the subflow and hand the failure to the enclosing flow."""

    def execute(self, history: History, *args: Any, **kwargs: Any) -> None:
        """Provides nothing (None), as TaskFlow's: it has no attempt number to give."""
        return None

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        return REVERT


class AlwaysRevertAll(Retry):
    """Never retry: revert the whole flow."""

    def execute(self, history: History, *args: Any, **kwargs: Any) -> None:
        """Provides nothing (None), as TaskFlow's: it has no attempt number to give."""
        return None

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        return REVERT_ALL
