"""The typed shapes of the flows API (they are its OpenAPI schema), built from persistence's models."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from flowkit.failure import Failure
from flowkit.persistence.models import AtomDetail, FlowDetail
from flowkit.persistence.queries import FlowSummary
from flowkit.serve.flow_graph import Graph
from flowkit.states import AtomState, FlowState

__all__ = [
    "AtomOut",
    "FailureOut",
    "FlowList",
    "FlowOut",
    "FlowSummaryOut",
    "GraphOut",
    "MapItemOut",
    "MapOut",
    "WaitOut",
    "seconds",
]

WAIT_META = "wait"
"""Where the engine keeps a waiting atom's deadline (epoch seconds) and event: ``meta["wait"]``."""
_REVERT_STATES = frozenset({AtomState.REVERTING, AtomState.REVERTED, AtomState.REVERT_FAILURE})


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds, or None unless both are known."""
    return None if start is None or end is None else (end - start).total_seconds()


class FlowSummaryOut(BaseModel):
    """One flow in a listing."""

    uuid: str
    name: str
    state: str
    logbook_uuid: str | None
    logbook_name: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: FlowSummary) -> FlowSummaryOut:
        return cls(**{k: getattr(s, k) for k in cls.model_fields})


class FlowList(BaseModel):
    """A page of flows, newest first; ``next_cursor`` (as ``?cursor=``) gets the next, None at the end."""

    flows: list[FlowSummaryOut]
    next_cursor: str | None


class FailureOut(BaseModel):
    """A captured exception: its message, its type names (most derived first) and its traceback."""

    exception_str: str
    exc_type_names: list[str]
    traceback_str: str

    @classmethod
    def of(cls, f: Failure | None) -> FailureOut | None:
        if f is None:
            return None
        return cls(
            exception_str=f.exception_str,
            exc_type_names=list(f.exc_type_names),
            traceback_str=f.traceback_str,
        )


class WaitOut(BaseModel):
    """What a waiting atom (``Sleep``, ``WaitForEvent``) waits for, as the engine saved it."""

    deadline: datetime | None = Field(description="When it wakes up (or times out)")
    event: str | None = Field(description="The event it waits for, if any")

    @classmethod
    def of(cls, ad: AtomDetail) -> WaitOut | None:
        saved = ad.meta.get(WAIT_META)
        if not isinstance(saved, dict) or ad.state is not AtomState.RUNNING:
            return None
        deadline = saved.get("deadline")
        event = saved.get("event")
        return cls(
            deadline=datetime.fromtimestamp(deadline, UTC) if isinstance(deadline, int | float) else None,
            event=event if isinstance(event, str) else None,
        )


class AtomOut(BaseModel):
    """One atom's saved state. Execute and revert are timed apart (``duration``/``revert_duration``)."""

    name: str
    uuid: str
    kind: str
    state: str
    intention: str
    attempts: int
    started_at: datetime | None = Field(description="When the last execute started")
    finished_at: datetime | None
    duration: float | None = Field(description="Seconds the last execute took (None: running or never ran)")
    revert_started_at: datetime | None
    revert_finished_at: datetime | None
    revert_duration: float | None = Field(description="Seconds the last revert took")
    result: Any = None
    failure: FailureOut | None = None
    revert_failure: FailureOut | None = None
    wait: WaitOut | None = Field(None, description="Set while the atom is a wait that is waiting")
    map: MapOut | None = Field(None, description="Set for a Map that started: its items, from its child flow")

    @classmethod
    def of(cls, ad: AtomDetail, maps: Mapping[str, MapOut] | None = None) -> AtomOut:
        return cls(
            name=ad.name,
            uuid=ad.uuid,
            kind=ad.kind,
            state=ad.state.value,
            intention=ad.intention.value,
            attempts=ad.attempts,
            started_at=ad.started_at,
            finished_at=ad.finished_at,
            duration=ad.duration,
            revert_started_at=ad.revert_started_at,
            revert_finished_at=ad.revert_finished_at,
            revert_duration=ad.revert_duration,
            result=ad.results,
            failure=FailureOut.of(ad.failure),
            revert_failure=FailureOut.of(ad.revert_failure),
            wait=WaitOut.of(ad),
            map=maps.get(ad.name) if maps else None,
        )


class MapItemOut(BaseModel):
    """One item of a Map: its atoms (named ``"<map>[k].<name>"``) and one state summing theirs up."""

    index: int
    state: str = Field(description="FAILURE if an atom failed, else one in progress, else SUCCESS/PENDING")
    atoms: list[AtomOut]


class MapOut(BaseModel):
    """A Map's items, read from the child flow detail it runs them in (bounded: see ``shown``)."""

    flow_uuid: str = Field(description="the child flow detail holding the items' atoms")
    state: str = Field(description="the child flow's state")
    size: int = Field(description="how many items the Map has")
    shown: int = Field(description="how many of them ``items`` lists (the first ones)")
    items: list[MapItemOut]


AtomOut.model_rebuild()


class GraphNodeOut(BaseModel):
    name: str
    kind: str = Field(description='"task" or "retry"')
    group: str | None = Field(description="id of the innermost flow holding it")


class GraphEdgeOut(BaseModel):
    source: str
    target: str
    decider: str | None = None


class GraphGroupOut(BaseModel):
    id: str = Field(description="the flow names from the outermost one, joined by /")
    name: str
    pattern: str = Field(description="LinearFlow, UnorderedFlow, GraphFlow, ...")
    parent: str | None
    retry: str | None = Field(description="the retry controller of this flow, if it has one")


class GraphOut(BaseModel):
    """The DAG: compiled from the flow's factory (``source="factory"``), or only the saved atoms
    (``source="atoms"``: no edges; ``note`` says why)."""

    source: str
    note: str | None
    nodes: list[GraphNodeOut]
    edges: list[GraphEdgeOut]
    groups: list[GraphGroupOut]

    @classmethod
    def of(cls, g: Graph) -> GraphOut:
        return cls(
            source=g.source,
            note=g.note,
            nodes=[GraphNodeOut(name=n.name, kind=n.kind, group=n.group) for n in g.nodes],
            edges=[GraphEdgeOut(source=e.source, target=e.target, decider=e.decider) for e in g.edges],
            groups=[
                GraphGroupOut(id=x.id, name=x.name, pattern=x.pattern, parent=x.parent, retry=x.retry)
                for x in g.groups
            ],
        )


class FlowOut(BaseModel):
    """One flow with everything the console's flow page shows."""

    uuid: str
    name: str
    state: str
    logbook_uuid: str | None
    created_at: datetime
    updated_at: datetime
    factory: str | None = Field(description="import path of the factory that rebuilds the flow")
    failures: dict[str, FailureOut] = Field(description="the failures the flow reverted (or reverts) for")
    atoms: list[AtomOut]
    revert_path: list[str] = Field(
        description="atoms that reverted or are reverting, in the order they began"
    )
    graph: GraphOut

    @classmethod
    def of(cls, fd: FlowDetail, graph: Graph, maps: Mapping[str, MapOut] | None = None) -> FlowOut:
        atoms = sorted(fd, key=lambda ad: (ad.position or 0, ad.name))
        reverted = [ad for ad in atoms if ad.state in _REVERT_STATES and ad.revert_started_at is not None]
        reverted.sort(key=lambda ad: (ad.revert_started_at, -(ad.position or 0)))
        factory = fd.meta.get("factory")
        failures = {n: FailureOut.of(f) for n, f in fd.failures.items()}
        return cls(
            uuid=fd.uuid,
            name=fd.name,
            state=(fd.state or FlowState.PENDING).value,
            logbook_uuid=fd.parent_uuid,
            created_at=fd.created_at,
            updated_at=fd.updated_at,
            factory=factory.get("name") if isinstance(factory, dict) else None,
            failures={n: f for n, f in failures.items() if f is not None},
            atoms=[AtomOut.of(ad, maps) for ad in atoms],
            revert_path=[ad.name for ad in reverted],
            graph=GraphOut.of(graph),
        )
