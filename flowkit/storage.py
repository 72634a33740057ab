"""The runtime state of one flow: atom states, results, failures, retry histories and the store.

The engine reads and writes state only through :class:`Storage`, and every atom
transition goes through :meth:`Storage.set_atom_state`, which checks it against
:mod:`flowkit.states` and hands it to the :class:`Recorder` (persistence) before
the engine acts on it. Without a recorder everything stays in memory; the
indexes are node ids of the :class:`~flowkit.compiler.CompiledFlow`, so the hot
loop does list lookups, not dict lookups by name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowkit.atom import extract
from flowkit.compiler import FROM_ATOM, JUNCTION, RETRY, Binding, CompiledFlow
from flowkit.exceptions import FlowkitError, NotFound
from flowkit.failure import Failure
from flowkit.retry import History
from flowkit.states import (
    ATOM_TRANSITIONS,
    AtomState,
    FlowState,
    check_atom_transition,
    check_flow_transition,
)

_PROGRESS_DONE = frozenset({AtomState.SUCCESS, AtomState.REVERTED})
_SUCCESS, _RETRYING = AtomState.SUCCESS, AtomState.RETRYING
"""Read per atom: bound once (an enum member read off its class takes EnumType's slow attribute path)."""


class Recorder:
    """Where state changes are written before the engine acts on them (persistence).

    The base class records nothing: an in-memory flow. Persistence backends subclass it.
    """

    def restore(self, storage: Storage) -> None:
        """Load saved state into a fresh ``storage`` before a run (resume after suspend or crash).

        Fill ``states``, ``results``, ``failures``, ``revert_results``, ``revert_failures``,
        ``atom_uuids``, ``finished_seq``, ``never_started``, ``histories``, ``store``, ``flow_state`` and
        ``flow_failures`` directly; the engine derives everything else from them.
        """

    def atom_changed(self, storage: Storage, i: int, state: AtomState) -> None:
        """Atom ``i`` moved to ``state``; its result/failure/intention are on ``storage``."""

    def flow_changed(self, storage: Storage, state: FlowState) -> None:
        """The flow moved to ``state``."""

    def retry_changed(self, storage: Storage, i: int) -> None:
        """Retry ``i``'s history changed."""

    def meta_changed(self, storage: Storage, i: int | None, meta: dict[str, Any]) -> None:
        """Atom ``i``'s metadata (the flow's when ``i`` is None) is now ``meta`` (its whole dict)."""

    groups = False
    """Whether :meth:`hold` / :meth:`commit_held` save several atom changes in one transaction (group
    commit: the parallel engine, several completions at once); the base class writes each at once."""

    def hold(self) -> None:
        """Keep the atom changes from now on until :meth:`commit_held` (the engine acts on none of them
        before that returns)."""

    def commit_held(self) -> None:
        """Save every atom change kept since :meth:`hold`, together (one transaction)."""

    pairs = False
    """Whether the serial engine may set :attr:`pair_next` (a task's SUCCESS saved with the next task's
    RUNNING, in one transaction); the base class writes each at once."""
    pair_next = False
    pair_start = False
    """Set by the serial engine right before the flow's RUNNING when nothing looks at the flow before
    its first atom write: a recorder that pairs may then save that start with the write."""
    after_deferred: Callable[[int], None] | None = None
    """Called with the atom's index once an atom change kept for pairing is saved (the engine tells its
    listeners then); None: nobody is told."""

    def flush_deferred(self) -> None:
        """Save an atom change kept for pairing now (nothing kept: nothing to do)."""

    def keeps(self, i: int) -> bool:
        """Whether atom ``i``'s last change is kept for pairing, not saved yet."""
        return False


class Storage:
    """State of one flow run; see the module docstring."""

    def __init__(
        self,
        compiled: CompiledFlow,
        store: Mapping[str, Any] | None = None,
        recorder: Recorder | None = None,
        flow_uuid: str | None = None,
    ) -> None:
        self.compiled = compiled
        self.flow_name = compiled.flow.name
        self.flow_uuid = flow_uuid or str(uuid.uuid4())
        self.store: dict[str, Any] = dict(store or {})
        self.recorder = recorder
        n = len(compiled.atoms)
        self.states: list[AtomState] = [AtomState.PENDING] * n
        self.results: list[Any] = [None] * n
        self.failures: list[Failure | None] = [None] * n
        self.revert_results: list[Any] = [None] * n
        self.revert_failures: list[Failure | None] = [None] * n
        self.atom_uuids: list[str] = _atom_uuids(n)
        self.finished_seq: list[int] = [0] * n
        self._seq = 0
        kinds = compiled.kinds
        self.histories: dict[int, History] = (
            {i: History() for i in range(n) if kinds[i] == RETRY} if RETRY in kinds else {}
        )  # the membership test runs in C: most flows have no retry controller
        self.flow_state = FlowState.PENDING
        self.never_started: set[int] = set()
        """Atoms whose execute was not called: failed before it, or saved RUNNING by a run that stopped
        (a suspend, a cancel) right before calling it. There is nothing of them to revert."""
        self.flow_failures: dict[str, Failure] = {}
        """The failures that the flow is reverting (or reverted) because of."""
        self.atom_meta: dict[int, dict[str, Any]] = {}
        """Metadata listeners gave atoms (TaskFlow's ``update_atom_metadata``), saved by the recorder."""
        self.flow_meta: dict[str, Any] = {}
        self.progress: dict[int, tuple[float, AtomState, dict[str, Any] | None]] = {}
        self.memory_view: Any = None
        """What :attr:`backend` shows for an in-memory run (set by the engine; see there)."""
        """Progress reported by tasks that report it: (value, the state it was reported in, details)."""

    # -- flow ----------------------------------------------------------------------------------------

    def set_flow_state(self, state: FlowState) -> FlowState:
        old = self.flow_state
        if old is state:
            return old
        check_flow_transition(self.flow_name, old, state)
        if self.recorder is not None:
            self.recorder.flow_changed(self, state)
        self.flow_state = state
        return old

    def get_flow_state(self) -> FlowState:
        return self.flow_state

    @property
    def backend(self) -> Any:
        """The persistence backend this run is saved to (a
        :class:`flowkit.persistence.backends.base.Backend`); for an in-memory run, a read-only view
        of the run as TaskFlow's memory backend shows it (``backend.memory.pformat()``), when the
        engine made one, else None.

        Typed ``Any`` because storage sits below persistence in the layers (docs/architecture.md).
        Read once by tools (TaskFlow's ``storage.backend``), never by the engine's loop.
        """
        saved = self.saved_backend
        return saved if saved is not None else self.memory_view

    @property
    def saved_backend(self) -> Any:
        """The persistence backend this run is saved to, or None for an in-memory run."""
        return getattr(self.recorder, "backend", None)  # only a backend's recorder has one

    # -- atoms ---------------------------------------------------------------------------------------

    def set_atom_state(self, i: int, state: AtomState) -> AtomState:
        """Move atom ``i`` to ``state`` (checked), recording it before the caller acts on it."""
        states = self.states
        old = states[i]
        if state not in ATOM_TRANSITIONS[old]:  # the check inline: this runs on every transition
            check_atom_transition(self.compiled.names[i], old, state)  # raises, naming the atom
        if state is _SUCCESS:
            self._seq += 1
            self.finished_seq[i] = self._seq
        recorder = self.recorder
        if recorder is not None and self.compiled.kinds[i] != JUNCTION:
            try:  # saved first: memory never claims what the database does not have
                recorder.atom_changed(self, i, state)
            except BaseException:
                if state is _SUCCESS:
                    self.finished_seq[i] = 0
                raise
        states[i] = state
        if self.progress and i in self.progress and state in _PROGRESS_DONE:
            self._save_progress(i)
        return old

    def _save_progress(self, i: int) -> None:
        """A task that reported progress ended: its last progress (1.0) and details go into its saved
        metadata, as TaskFlow keeps them. Written here, in the engine's thread, once per such task;
        reports themselves arrive in the task's thread and stay in memory."""
        _value, _state, details = self.progress[i]
        self.update_atom_metadata(self.compiled.names[i], {"progress": 1.0, "progress_details": details})

    def reset_atom(self, i: int) -> None:
        """Forget an atom's outcome so it can run again (a retry's new attempt)."""
        self.results[i] = None
        self.failures[i] = None
        self.revert_results[i] = None
        self.revert_failures[i] = None
        self.finished_seq[i] = 0
        self.never_started.discard(i)
        self.progress.pop(i, None)
        if self.states[i] is not AtomState.PENDING:
            self.set_atom_state(i, AtomState.PENDING)

    # -- metadata ------------------------------------------------------------------------------------

    def update_atom_metadata(self, atom_name: str, update_with: Mapping[str, Any]) -> None:
        """Merge ``update_with`` into the atom's metadata and save it (TaskFlow's name; the timing
        listeners write ``duration``/timestamps here)."""
        i = self._id(atom_name)
        meta = self.atom_meta.setdefault(i, {})
        meta.update(update_with)
        if self.recorder is not None:
            self.recorder.meta_changed(self, i, meta)

    def update_flow_metadata(self, update_with: Mapping[str, Any]) -> None:
        """Merge ``update_with`` into the flow's metadata and save it (TaskFlow's name)."""
        self.flow_meta.update(update_with)
        if self.recorder is not None:
            self.recorder.meta_changed(self, None, self.flow_meta)

    # -- progress ------------------------------------------------------------------------------------

    def set_task_progress(
        self, task_name: str, progress: float, details: Mapping[str, Any] | None = None
    ) -> None:
        """Record a task's reported progress; ``details`` (when given) replace the ones kept, an empty
        mapping clears them (TaskFlow's ``set_task_progress``)."""
        i = self._id(task_name)
        old = self.progress.get(i)
        kept = old[2] if old is not None else None
        if details is not None:
            kept = {"at_progress": progress, "details": dict(details)} if details else None
        self.progress[i] = (progress, self.states[i], kept)

    def get_task_progress(self, task_name: str) -> float:
        """1.0 once the task succeeded or was reverted; while it runs (or reverts), what it last
        reported in that state; else 0.0. Worked out from the state, so the engine writes nothing
        for the tasks that never report."""
        i = self._id(task_name)
        state = self.states[i]
        if state is AtomState.SUCCESS or state is AtomState.REVERTED:
            return 1.0
        reported = self.progress.get(i)
        return reported[0] if reported is not None and reported[1] is state else 0.0

    def get_task_progress_details(self, task_name: str) -> dict[str, Any] | None:
        """``{"at_progress": p, "details": {...}}`` of the last report that carried details, else None."""
        reported = self.progress.get(self._id(task_name))
        return reported[2] if reported is not None else None

    def _id(self, atom_name: str) -> int:
        try:
            return self.compiled.index[atom_name]
        except KeyError:
            raise NotFound(f"no atom named {atom_name!r} in flow {self.flow_name!r}") from None

    def get_atom_state(self, atom_name: str) -> AtomState:
        return self.states[self._id(atom_name)]

    def get_atom_states(self) -> dict[str, AtomState]:
        c = self.compiled
        return {c.names[i]: self.states[i] for i in c.atom_ids()}

    def get_result(self, atom_name: str) -> Any:
        return self.results[self._id(atom_name)]

    def get(self, atom_name: str) -> Any:
        """What the atom's ``execute`` came to: its result, or the :class:`Failure` it raised.

        TaskFlow's ``storage.get`` (also :meth:`get_execute_result`). Unlike :meth:`get_result`, which
        is None for an atom that has not run, an outcome that does not exist is an error: the atom must
        have succeeded or failed (or be reverting after that), else :class:`NotFound` names its state.
        """
        i = self._id(atom_name)
        failure = self.failures[i]
        if failure is not None:
            return failure
        state = self.states[i]
        if state not in _STATES_WITH_RESULT:
            why = " (a decider ignored it)" if state is AtomState.IGNORE else ""
            raise NotFound(
                f"atom {atom_name!r} of flow {self.flow_name!r} has no execute result: "
                f"it is {state.value}{why}"
            )
        return self.results[i]

    get_execute_result = get

    def get_failure(self, atom_name: str) -> Failure | None:
        return self.failures[self._id(atom_name)]

    def get_execute_failures(self) -> dict[str, Failure]:
        """Every atom whose execute failed, by name (TaskFlow's ``get_execute_failures``)."""
        names = self.compiled.names
        return {names[i]: f for i, f in enumerate(self.failures) if f is not None}

    def get_revert_failures(self) -> dict[str, Failure]:
        """Every atom whose revert failed, by name (TaskFlow's ``get_revert_failures``)."""
        names = self.compiled.names
        return {names[i]: f for i, f in enumerate(self.revert_failures) if f is not None}

    def get_revert_failure(self, atom_name: str) -> Failure | None:
        return self.revert_failures[self._id(atom_name)]

    def get_atom_uuid(self, atom_name: str) -> str:
        return self.atom_uuids[self._id(atom_name)]

    def get_retry_history(self, retry_name: str) -> History:
        i = self._id(retry_name)
        if i not in self.histories:
            raise NotFound(f"atom {retry_name!r} is not a retry controller")
        return self.histories[i]

    def get_retry_histories(self) -> list[tuple[str, History]]:
        """Every retry controller's history, as ``(name, history)`` pairs in flow order."""
        names = self.compiled.names
        return [(names[i], self.histories[i]) for i in sorted(self.histories)]

    def get_revert_result(self, atom_name: str) -> Any:
        """What the atom's revert returned, or the :class:`Failure` it raised (None before a revert)."""
        i = self._id(atom_name)
        failure = self.revert_failures[i]
        return failure if failure is not None else self.revert_results[i]

    def get_atom_intention(self, atom_name: str) -> str:
        """What the engine means to do with the atom next, read from its state (TaskFlow's names).

        ``"IGNORE"`` (a decider skipped it), ``"REVERT"`` (being or been reverted), ``"RETRY"`` (a
        controller about to run its scope again), else ``"EXECUTE"``. flowkit keeps no separate
        intention: the saved state already says it.
        """
        return _INTENTIONS.get(self.states[self._id(atom_name)], "EXECUTE")

    # -- symbols -------------------------------------------------------------------------------------

    def providers(self) -> dict[str, list[int]]:
        """Symbol -> the atoms that provide it (worked out by the compiler)."""
        return self.compiled.providers

    def fetch(self, symbol: str) -> Any:
        """The value of ``symbol``: from the atom that provided it last, else from the store."""
        best = -1
        for i in self.providers().get(symbol, ()):
            if self.states[i] in _HOLDS_RESULT and (
                best < 0 or self.finished_seq[i] > self.finished_seq[best]
            ):
                best = i
        if best >= 0:
            atom = self.compiled.atoms[best]
            return extract(self.results[best], atom.save_as[symbol], atom.name, symbol)
        if symbol in self.store:
            return self.store[symbol]
        raise NotFound(
            f"symbol {symbol!r} has no value in flow {self.flow_name!r} (not provided yet, not in store)"
        )

    def fetch_all(self) -> dict[str, Any]:
        """Every symbol with a value: the store, overridden by what atoms provided; atoms' symbols in
        the order the atoms run (as TaskFlow lists them)."""
        out = dict(self.store)
        c = self.compiled
        symbols = dict.fromkeys(s for i in c.order for s in c.atoms[i].save_as)
        for symbol in symbols:
            try:
                out[symbol] = self.fetch(symbol)
            except FlowkitError:
                continue
        return out

    def fetch_mapped_args(
        self,
        args_mapping: Mapping[str, str],
        atom_name: str | None = None,
        optional_args: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The values for ``args_mapping`` (argument -> symbol) as atom ``atom_name`` sees them.

        With ``atom_name``, a symbol the atom binds comes from the provider the compiler chose for it
        (the nearest one before the atom), as the engine would pass it now; any other symbol, or
        without ``atom_name``, is :meth:`fetch`'s latest value. Arguments in ``optional_args`` with
        no value are left out; any other is :class:`~flowkit.exceptions.NotFound`.
        """
        own: dict[str, Binding] = {}
        if atom_name is not None:
            own = {b.symbol: b for b in self.compiled.bindings[self._id(atom_name)]}
        optional = set(optional_args)
        out: dict[str, Any] = {}
        for arg, symbol in args_mapping.items():
            try:
                b = own.get(symbol)
                if b is None:
                    out[arg] = self.fetch(symbol)
                    continue
                bound = self.bind_args((b,), partial=arg in optional)
                if b.arg in bound:
                    out[arg] = bound[b.arg]
            except NotFound:
                if arg not in optional:
                    raise
        return out

    def _provider_before(self, ignored: int, symbol: str) -> int:
        """The nearest atom before ``ignored`` that provided ``symbol`` (SUCCESS), or -1."""
        providers = set(self.providers().get(symbol, ()))
        for q in _nearest_first(self.compiled.preds, ignored):
            if q in providers and self.states[q] is AtomState.SUCCESS:
                return q
        return -1

    def inject(self, values: Mapping[str, Any]) -> None:
        """Add values to the flow's store (before running, or between a suspend and a resume)."""
        self.store.update(values)

    def bind_args(self, bindings: tuple[Binding, ...], partial: bool = False) -> dict[str, Any]:
        """The keyword arguments ``bindings`` produce right now.

        With ``partial``, arguments that cannot be bound are left out instead of raising
        (reverts get what can still be found).
        """
        kwargs: dict[str, Any] = {}
        results = self.results
        store = self.store
        for b in bindings:
            if b.kind == FROM_ATOM:
                p = b.provider
                state = self.states[p]
                # A controller about to retry still holds its last value: its scope's reverts get it.
                if state is _SUCCESS or (partial and state is _RETRYING):
                    if b.key is None:  # the whole result (extract's first case, inline)
                        kwargs[b.arg] = results[p]
                        continue
                    atom = self.compiled.atoms[p]
                    try:
                        kwargs[b.arg] = extract(results[p], b.key, atom.name, b.symbol)
                    except FlowkitError:
                        if not partial:
                            raise
                    continue
                if state is AtomState.IGNORE:  # as TaskFlow: the value from the nearest provider before it
                    q = self._provider_before(p, b.symbol)
                    if q >= 0:
                        atom = self.compiled.atoms[q]
                        kwargs[b.arg] = extract(results[q], atom.save_as[b.symbol], atom.name, b.symbol)
                        continue
                # provider was ignored by a decider: fall back to the store, then the default
            if b.symbol in store:
                kwargs[b.arg] = store[b.symbol]
            elif partial:
                continue
            elif not b.optional:
                raise NotFound(
                    f"atom needs {b.symbol!r} for argument {b.arg!r}, but its provider did not run "
                    f"and the store has no value"
                )
        return kwargs


def _atom_uuids(n: int) -> list[str]:
    """``n`` distinct uuids for a run's atoms, from one uuid4: its last 48 bits (the node field) plus
    the atom's index.

    Why not a uuid4 per atom: that is a system call and a UUID object per atom, most of a fresh
    storage's cost on a large flow. These stay well-formed version 4 uuids (the version and variant
    bits are the base's), unique within the run (indexes are, modulo 2**48), and as unlikely to meet
    another run's as a random uuid (74 random bits besides). A persisted flow replaces them with the
    uuids of its saved atom details (see ``Recorder.restore``).
    """
    base = uuid.uuid4().hex
    return _uuids_from(f"{base[:8]}-{base[8:12]}-{base[12:16]}-{base[16:20]}-", int(base[20:], 16), n)


def _uuids_from(prefix: str, node: int, n: int) -> list[str]:
    """``prefix`` + the 12 hex digits of ``(node + i) mod 2**48``, for ``i`` in ``range(n)``.

    Formatting a number costs a few thousand instructions, so it is done once per 256 uuids (the
    node's first 10 digits), and each uuid is that head plus its last two digits from a table.
    """
    out: list[str] = []
    start, end = node, node + n
    while start < end:
        block = start >> 8
        head = f"{prefix}{block & 0xFFFFFFFFFF:010x}"
        out.extend(map(head.__add__, _HEX2[start & 0xFF : min(256, end - (block << 8))]))
        start = (block + 1) << 8
    return out


_HEX2 = [f"{k:02x}" for k in range(256)]


def _nearest_first(preds: list[list[int]], start: int) -> Iterable[int]:
    """The nodes before ``start``, nearest first (breadth first over predecessors)."""
    seen = {start}
    frontier = [start]
    while frontier:
        nxt: list[int] = []
        for x in frontier:
            for p in preds[x]:
                if p not in seen:
                    seen.add(p)
                    nxt.append(p)
                    yield p
        frontier = nxt


_HOLDS_RESULT = frozenset((AtomState.SUCCESS, AtomState.RETRYING))
"""States whose result :meth:`Storage.fetch` gives: a controller deciding to retry still holds its value."""

_STATES_WITH_RESULT = frozenset((AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTING))
"""States in which an atom's execute outcome is known, for :meth:`Storage.get`."""

_INTENTIONS = {
    AtomState.IGNORE: "IGNORE",
    AtomState.REVERTING: "REVERT",
    AtomState.REVERTED: "REVERT",
    AtomState.REVERT_FAILURE: "REVERT",
    AtomState.RETRYING: "RETRY",
}
"""State -> TaskFlow's intention name, for :meth:`Storage.get_atom_intention` (others: EXECUTE)."""
