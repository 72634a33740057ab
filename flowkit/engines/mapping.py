"""The engine side of :class:`flowkit.Map`: each Map runs its items as a child run of its own.

Why a child run rather than growing the compiled graph in place: the parent's compiled flow, storage,
saved atom details and hot loop stay exactly as they are for every flow, Map or not, and a child is an
ordinary flow in every respect that matters here (scheduling, retries, revert order, persistence,
resume, every dispatcher). The only hook is :func:`dispatcher_for`: an engine whose flow holds Map atoms
gets a :class:`MapCalls` in front of its dispatcher, which runs those atoms' calls in the engine's own
process and passes every other call through untouched.

A Map's execute, in the scheduler's thread: expand ``over`` (:meth:`flowkit.map.Map.expand`), load an
engine of the parent's kind and options on the child flow, with the values the items need from outside
copied into its store, saved in the parent's backend under a flow detail whose uuid is derived from the
Map atom's (so a resume finds it again); link it from the Map's atom metadata (``meta["map"]``) before
any item starts. Then the child runs: inline on the serial engine, on a thread of its own otherwise (the
child's items go to the child's threads, processes or workers). On success the Map's result is the
list of the items' ``result`` values. When an item fails, the child reverts every item that ran
(successors first, the latest first) and the Map fails with the item's error, so the parent reverts
what ran before the Map. A Map's revert reverts its child flow, whatever state it was left in.

A resumed parent (after a crash) runs the Map again: the child loads its saved flow detail, so the
items that finished are not run again; an ``over`` whose length changed meanwhile is refused.
"""

from __future__ import annotations

import functools
import threading
import uuid as uuidlib
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit.compiler import FROM_ATOM
from flowkit.context import AtomContext
from flowkit.engines.dispatch import EXECUTE, Completion, Dispatcher
from flowkit.exceptions import MapError, NotFound, WrappedFailure
from flowkit.failure import Failure
from flowkit.map import Expansion, Map
from flowkit.notifier import ANY
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from flowkit.engines.engine import Engine

_POLL_S = 0.01
"""How often the scheduler looks for a Map's completion while a child run is on its own thread."""

_RESETTABLE = frozenset({FlowState.SUCCESS, FlowState.FAILURE, FlowState.REVERTED, FlowState.SUSPENDED})

_MAP_NODES: weakref.WeakKeyDictionary[Engine, tuple[int, ...]] = weakref.WeakKeyDictionary()
_CHILDREN: weakref.WeakKeyDictionary[Engine, dict[int, Engine]] = weakref.WeakKeyDictionary()
"""Per parent engine, the child engine each Map node ran last (reverted in place when still here)."""


def dispatcher_for(engine: Engine, dispatcher: Dispatcher) -> Dispatcher:
    """``dispatcher`` itself for a flow without Map atoms; else a :class:`MapCalls` in front of it."""
    nodes = _MAP_NODES.get(engine)
    if nodes is None:
        nodes = _MAP_NODES[engine] = engine.compile().nodes_of(Map)
    if not nodes:
        return dispatcher
    calls = MapCalls(engine, dispatcher, frozenset(nodes))
    calls.check_known_inputs()
    return calls


def child_flow_uuid(map_atom_uuid: str) -> str:
    """The child flow detail of a Map atom: derived from its uuid, the same in every process."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"flowkit/map/{map_atom_uuid}"))


class MapCalls(Dispatcher):
    """A dispatcher in front of the engine's: Map nodes run here, in this process; the rest pass on."""

    def __init__(self, engine: Engine, inner: Dispatcher, nodes: frozenset[int]) -> None:
        super().__init__()
        self.engine = engine
        self.inner = inner
        self.inline = inner.inline
        self.capacity = inner.capacity
        self.nodes = nodes
        self._local: deque[Completion] = deque()
        self._active = 0
        self._lock = threading.Lock()
        self._prepared: dict[int, Expansion] = {}
        st = engine.storage
        self._fresh = frozenset(i for i in nodes if st.states[i] is AtomState.PENDING)
        """Maps that had not started when this run began: a child flow saved for one of them is an earlier
        run's (the flow was reset), and runs afresh; any other was interrupted, and resumes."""

    # The engine starts, stops and discards its own dispatcher; this one only routes calls.

    def submit(
        self, i: int, atom: Any, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        if i not in self.nodes:
            self.inner.submit(i, atom, action, kwargs, ctx)
            return
        job: Callable[[], tuple[bool, Any]]
        try:
            if action == EXECUTE:
                job = functools.partial(_run_child, *self._prepare_execute(i, atom, kwargs))
            else:
                found = self._prepare_revert(i, atom, kwargs)
                job = functools.partial(_revert_child, found, kwargs.get("flow_failures"))
        except Exception:
            self._local.append((i, action, False, Failure()))
            return
        if self.inline:
            ok, value = job()
            self._local.append((i, action, ok, value))
            return
        with self._lock:
            self._active += 1

        def run() -> None:
            try:
                ok, value = job()
            except BaseException:
                ok, value = False, Failure.from_base_exception()
            self._local.append((i, action, ok, value))  # before the count drops: see wait()
            with self._lock:
                self._active -= 1

        threading.Thread(target=run, name=f"flowkit-map-{atom.name}", daemon=True).start()

    def wait(self, timeout: float | None) -> Completion | None:
        active = self._active  # read before the deque: a thread appends, then counts down
        if self._local:
            return self._local.popleft()
        if not active:
            return self.inner.wait(timeout)
        # A child runs on its own thread and cannot wake the inner dispatcher's wait: poll both.
        waited = 0.0
        while True:
            step = _POLL_S if timeout is None else min(_POLL_S, max(timeout - waited, 0.0))
            item = self.inner.wait(step)
            if item is not None:
                return item
            if self._local:
                return self._local.popleft()
            waited += step
            if timeout is not None and waited >= timeout:
                return None

    # -- before anything runs ------------------------------------------------------------------------

    def check_known_inputs(self) -> None:
        """Expand now the Maps whose ``over`` is in the store already, so bad input (``over`` not a
        sequence, ``each`` building no atom) is refused before any task runs."""
        engine = self.engine
        c, st = engine.compile(), engine.storage
        for i in self.nodes:
            if st.states[i] is not AtomState.PENDING:
                continue
            over_binding = next(b for b in c.bindings[i] if b.arg == "over")
            if over_binding.kind == FROM_ATOM or over_binding.symbol not in st.store:
                continue
            atom = c.atoms[i]
            assert isinstance(atom, Map)
            self._prepared[i] = atom.expand(st.store[over_binding.symbol])

    # -- execute -------------------------------------------------------------------------------------

    def _prepare_execute(self, i: int, atom: Map, kwargs: dict[str, Any]) -> tuple[Engine, Expansion]:
        """Expand, load the child engine (resuming its saved flow detail if any) and link it."""
        over = kwargs["over"]
        expansion = self._prepared.pop(i, None) or atom.expand(over)
        st = self.engine.storage
        child_uuid = child_flow_uuid(st.atom_uuids[i])
        child = self._load_child(atom, expansion, child_uuid)
        if i in self._fresh and child.storage.get_flow_state() in _RESETTABLE:
            child.reset()
        st.update_atom_metadata(atom.name, {"map": {"flow_uuid": child_uuid, "items": expansion.size}})
        _CHILDREN.setdefault(self.engine, {})[i] = child
        return child, expansion

    def _load_child(self, atom: Map, expansion: Expansion, child_uuid: str) -> Engine:
        from flowkit.engines import load
        from flowkit.persistence.models import FlowDetail

        parent = self.engine
        options = dict(parent.options)
        recorder = parent.storage.recorder
        backend = getattr(recorder, "backend", None)
        if backend is not None:
            try:
                with backend.get_connection() as conn:
                    detail = conn.get_flow_detail(child_uuid)
            except NotFound:
                detail = FlowDetail(expansion.flow.name, child_uuid, meta={"map": {"items": expansion.size}})
            else:
                saved = detail.meta.get("map", {}).get("items")
                if saved is not None and saved != expansion.size:
                    raise MapError(
                        atom.name,
                        f"its saved expansion has {saved} items but {atom.over!r} now has {expansion.size}",
                    )
            options.update(backend=backend, flow_detail=detail, fence=getattr(recorder, "fence", None))
        child = load(expansion.flow, engine=parent.kind, **options)
        child.job_uuid = parent.job_uuid  # the items' worker requests name the parent's job
        if parent.atom_notifier.active:  # the parent's listeners hear the items' atoms too
            child.atom_notifier.register(ANY, parent.atom_notifier.notify)
        child.storage.inject(self._outside_values(atom, child))
        return child

    def _outside_values(self, atom: Map, child: Engine) -> dict[str, Any]:
        """What the items need from outside them, taken from the parent run (through the Map's scope)."""
        c = child.compile()
        needed: dict[str, None] = {}
        for bindings in (*c.bindings, *c.revert_bindings):
            for b in bindings:
                if b.kind != FROM_ATOM:
                    needed[b.symbol] = None
        st = self.engine.storage
        out: dict[str, Any] = {}
        scope = atom.scope
        for symbol in needed:
            try:
                out[symbol] = st.fetch(scope.get(symbol, symbol))
            except NotFound:
                continue  # the child's own validation names the item atom that needs it
        return out

    # -- revert --------------------------------------------------------------------------------------

    def _prepare_revert(self, i: int, atom: Map, kwargs: dict[str, Any]) -> Engine | None:
        """The child engine to revert: the one this engine ran, else the saved one (None: nothing ran)."""
        child = _CHILDREN.get(self.engine, {}).get(i)
        if child is not None:
            return child
        backend = self.engine.storage.saved_backend
        over = kwargs.get("over")
        if backend is None or over is None:
            return None
        child_uuid = child_flow_uuid(self.engine.storage.atom_uuids[i])
        try:
            with backend.get_connection() as conn:
                conn.get_flow_detail(child_uuid)
        except NotFound:
            return None
        return self._load_child(atom, atom.expand(over), child_uuid)


def _run_child(child: Engine, expansion: Expansion) -> tuple[bool, Any]:
    """Run the items; the Map's result is their ``result`` values in item order."""
    try:
        child.run()
    except Exception:
        return False, Failure()
    st = child.storage
    if expansion.results is None:
        return True, None
    return True, [st.fetch(symbol) for symbol in expansion.results]


def _revert_child(child: Engine | None, flow_failures: Any) -> tuple[bool, Any]:
    """Revert every item the child ran (successors first); done when the child ends REVERTED."""
    if child is None:
        return True, None
    st = child.storage
    if st.flow_state in (FlowState.PENDING, FlowState.REVERTED):
        return True, None
    failures = dict(flow_failures or {})
    if not failures:
        failures = {"<map revert>": Failure.from_exception(MapError(child.flow.name, "reverted by its flow"))}
    st.flow_failures = failures  # a run with saved failures reverts (as a resumed revert does)
    try:
        child.run()
    except Exception:
        if st.get_flow_state() is not FlowState.REVERTED:
            return False, Failure()
    if st.get_flow_state() is not FlowState.REVERTED:
        return False, Failure.from_exception(WrappedFailure(child._run.all_failures() if child._run else []))
    return True, None
