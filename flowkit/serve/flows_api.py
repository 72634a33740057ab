"""REST routes of ``flowkit serve`` for flows: the list (filters, keyset paging), one flow with its atoms
and graph, and the flow's live changes as server-sent events (what the console draws from).

Live updates poll the flow's rows (:func:`flowkit.persistence.queries.atom_marks`: the flow's state and
each atom's state and timings, nothing decoded), and its Maps' child flows' rows, and send what moved,
so the engine pays nothing for a watcher: no notifier, no extra write per atom.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from flowkit.exceptions import NotFound
from flowkit.persistence import queries
from flowkit.persistence.queries import AmbiguousPrefix, BadQuery, FlowFilter
from flowkit.serve import flow_models as m
from flowkit.serve.flow_graph import graph_of
from flowkit.serve.map_items import MapWatch, maps_of
from flowkit.serve.state import ServeState, get_state

__all__ = ["router"]

router = APIRouter(tags=["flows"])
POLL_SECONDS = 0.5
"""How often a live stream reads the flow's rows."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""

State = Annotated[ServeState, Depends(get_state)]


def _problem(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, AmbiguousPrefix):
        return HTTPException(409, str(exc))
    return HTTPException(400, str(exc))


@router.get("/flows", response_model=m.FlowList, summary="Flows, newest first, filtered and paged")
def list_flows(
    state: State,
    flow_state: Annotated[str | None, Query(alias="state", description="A flow state, e.g. RUNNING")] = None,
    name: Annotated[str | None, Query(description="Part of the flow's name (any case)")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601 with zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> m.FlowList:
    """A page of flows; follow ``next_cursor`` for the next (keyset paging: no page is ever slow)."""
    try:
        page = queries.list_flows(
            state.backend, FlowFilter(flow_state, name, since), limit=limit, cursor=cursor
        )
    except BadQuery as exc:
        raise _problem(exc) from exc
    return m.FlowList(flows=[m.FlowSummaryOut.of(s) for s in page.flows], next_cursor=page.next_cursor)


@router.get("/flows/{uuid}", response_model=m.FlowOut, summary="One flow: atoms, timings, failures, graph")
def show_flow(state: State, uuid: str) -> m.FlowOut:
    """The flow whose uuid is (or uniquely starts with) ``uuid``."""
    try:
        fd = queries.find_flow(state.backend, uuid)
    except (NotFound, AmbiguousPrefix, BadQuery) as exc:
        raise _problem(exc) from exc
    allow = getattr(state.settings, "allow", None)
    return m.FlowOut.of(fd, graph_of(fd, allow), maps_of(state.backend, fd))


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


def _atom_event(name: str, mark: tuple[Any, ...]) -> dict[str, Any]:
    state, intention, attempts, started, finished, r_started, r_finished = mark
    return {
        "name": name,
        "state": state,
        "intention": intention,
        "attempts": attempts,
        "duration": m.seconds(started, finished),
        "revert_duration": m.seconds(r_started, r_finished),
        "running": started is not None and finished is None,
    }


@router.get(
    "/flows/{uuid}/events",
    summary="Live changes of one flow (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "flow and atom events"}},
)
async def flow_events(request: Request, state: State, uuid: str) -> StreamingResponse:
    """``event: flow`` ``{"state"}`` and ``event: atom`` ``{"name", "state", ...}``: first everything,
    then what changed, read from the database every :data:`POLL_SECONDS`. The atoms of a Map's items
    come as ``atom`` events too (their names are ``"<map>[k].<name>"``), and their child flow's state as
    ``event: map`` ``{"uuid", "map", "state"}`` (:class:`~flowkit.serve.map_items.MapWatch`)."""
    try:
        full = await run_in_threadpool(queries.resolve_prefix, state.backend, uuid)
        watch = MapWatch(state.backend, full)
        first = await run_in_threadpool(watch.poll)
    except (NotFound, AmbiguousPrefix, BadQuery) as exc:
        raise _problem(exc) from exc

    # A live view never ends by itself, and uvicorn waits for open responses before it stops: a server
    # that sets ``state.stopping`` (a threading.Event) when asked to stop gets its streams ended.
    stopping: threading.Event | None = getattr(state, "stopping", None)

    async def stream() -> AsyncIterator[str]:
        flow_states: dict[str, str] = {}
        marks: dict[str, tuple[Any, ...]] = {}
        current = first
        quiet = 0.0
        while True:
            out: list[str] = []
            last: list[str] = []  # the flow's own state goes after its items': SUCCESS says all is seen
            for flow_uuid, (new_state, new_marks) in current.items():
                for n, mk in new_marks.items():
                    if marks.get(n) != mk:
                        out.append(_event("atom", _atom_event(n, mk)))
                        marks[n] = mk
                if new_state != flow_states.get(flow_uuid):
                    flow_states[flow_uuid] = new_state
                    if flow_uuid == full:
                        last.append(_event("flow", {"uuid": full, "state": new_state}))
                    else:
                        data = {"uuid": flow_uuid, "map": watch.children[flow_uuid], "state": new_state}
                        out.append(_event("map", data))
            out += last
            if out:
                quiet = 0.0
                yield "".join(out)
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if await request.is_disconnected() or (stopping is not None and stopping.is_set()):
                return
            try:
                current = await run_in_threadpool(watch.poll)
            except NotFound:
                yield _event("gone", {"uuid": full})
                return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
