"""The flows API of ``flowkit serve`` through a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.serve import flows_api
from flowkit.serve.settings import ServeSettings
from tests.support.console import N_FLOWS, bulk_flows, run_in_background, saved_flow
from tests.support.http_server import serving
from tests.support.persistence import backend_url, fresh_backend

KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[httpx.Client, Backend]]:
    url = backend_url(request.param, request, tmp_path)
    backend = fresh_backend(url)
    try:
        with (
            serving(ServeSettings(persistence_url=url)) as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            yield http, backend
    finally:
        backend.close()


def _release(gates: Path, *names: str) -> None:
    for name in names:
        (gates / name).touch()


def test_the_list_filters_and_pages(served: tuple[httpx.Client, Backend]) -> None:
    http, backend = served
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with backend.get_connection() as conn:
        book = LogBook("many")
        for i in range(7):
            when = t0 + timedelta(minutes=i)
            book.add(
                FlowDetail(
                    f"f-{i}", state="FAILURE" if i % 2 else "SUCCESS", created_at=when, updated_at=when
                )
            )
        conn.save_logbook(book)
    first = http.get("/api/v1/flows", params={"limit": 3}).json()
    assert [f["name"] for f in first["flows"]] == ["f-6", "f-5", "f-4"]
    assert first["flows"][0]["logbook_name"] == "many" and first["flows"][0]["state"] == "SUCCESS"
    second = http.get("/api/v1/flows", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    third = http.get("/api/v1/flows", params={"limit": 3, "cursor": second["next_cursor"]}).json()
    assert [f["name"] for f in second["flows"] + third["flows"]] == ["f-3", "f-2", "f-1", "f-0"]
    assert third["next_cursor"] is None
    failed = http.get(
        "/api/v1/flows", params={"state": "FAILURE", "since": (t0 + timedelta(minutes=2)).isoformat()}
    )
    assert [f["name"] for f in failed.json()["flows"]] == ["f-5", "f-3"]
    assert [f["name"] for f in http.get("/api/v1/flows", params={"name": "F-1"}).json()["flows"]] == ["f-1"]


def test_bad_requests_get_a_4xx_that_names_the_problem(served: tuple[httpx.Client, Backend]) -> None:
    http, backend = served
    with backend.get_connection() as conn:
        book = LogBook("b")
        book.add(FlowDetail("x", "abcd0000-0000-4000-8000-000000000001"))
        book.add(FlowDetail("y", "abcd0000-0000-4000-8000-000000000002"))
        conn.save_logbook(book)
    bad_state = http.get("/api/v1/flows", params={"state": "DONE"})
    assert bad_state.status_code == 400 and "unknown flow state 'DONE'" in bad_state.json()["detail"]
    bad_cursor = http.get("/api/v1/flows", params={"cursor": "xyz"})
    assert bad_cursor.status_code == 400 and "cursor 'xyz'" in bad_cursor.json()["detail"]
    assert http.get("/api/v1/flows", params={"limit": 0}).status_code == 422
    naive = http.get("/api/v1/flows", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 400 and "no time zone" in naive.json()["detail"]
    missing = http.get("/api/v1/flows/ffff")
    assert missing.status_code == 404 and "no flow whose uuid starts with 'ffff'" in missing.json()["detail"]
    ambiguous = http.get("/api/v1/flows/abcd")
    assert ambiguous.status_code == 409 and "starts several flow uuids" in ambiguous.json()["detail"]
    assert http.get("/api/v1/flows/not-hex!").status_code in (400, 404)
    assert http.get("/api/v1/flows/ffff/events").status_code == 404
    assert http.get("/api/v1/flows/abcd0000-0000-4000-8000-000000000002").json()["name"] == "y"


def test_a_flow_shows_its_atoms_timings_and_compiled_graph_with_groups(
    served: tuple[httpx.Client, Backend], tmp_path: Path
) -> None:
    http, backend = served
    _release(tmp_path, "prepare", "node-1", "node-2-disk", "node-2-boot", "finish")
    fd, run = run_in_background(backend, "tests.console_flows:nested", tmp_path)
    assert run.wait(30) and not run.errors
    body = http.get(f"/api/v1/flows/{fd.uuid[:8]}").json()
    assert (body["uuid"], body["state"], body["factory"]) == (
        fd.uuid,
        "SUCCESS",
        "tests.console_flows:nested",
    )
    atoms = {a["name"]: a for a in body["atoms"]}
    assert set(atoms) == {"prepare", "node-1", "node-2-disk", "node-2-boot", "finish"}
    assert all(
        a["state"] == "SUCCESS" and a["duration"] is not None and a["revert_duration"] is None
        for a in atoms.values()
    )
    assert atoms["prepare"]["result"] == "prepare"
    graph = body["graph"]
    assert graph["source"] == "factory" and graph["note"] is None
    groups = {g["id"]: g for g in graph["groups"]}
    assert set(groups) == {"provision", "provision/nodes", "provision/nodes/node-2"}
    assert (
        groups["provision/nodes"]["pattern"] == "UnorderedFlow"
        and groups["provision/nodes"]["parent"] == "provision"
    )
    nodes = {n["name"]: n["group"] for n in graph["nodes"]}
    assert nodes == {
        "prepare": "provision",
        "node-1": "provision/nodes",
        "node-2-disk": "provision/nodes/node-2",
        "node-2-boot": "provision/nodes/node-2",
        "finish": "provision",
    }
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert {("prepare", "node-1"), ("prepare", "node-2-disk"), ("node-2-disk", "node-2-boot")} <= edges
    assert {("node-1", "finish"), ("node-2-boot", "finish")} <= edges
    assert ("prepare", "finish") not in edges


def test_a_failed_flow_shows_tracebacks_and_its_revert_path(
    served: tuple[httpx.Client, Backend], tmp_path: Path
) -> None:
    http, backend = served
    _release(tmp_path, "first", "second")
    fd, run = run_in_background(backend, "tests.console_flows:failing", tmp_path)
    assert run.wait(30) and len(run.errors) == 1
    body = http.get(f"/api/v1/flows/{fd.uuid}").json()
    assert body["state"] == "REVERTED"
    atoms = {a["name"]: a for a in body["atoms"]}
    failure = atoms["explode"]["failure"]
    assert (
        failure["exception_str"] == "explode cannot go on"
        and failure["exc_type_names"][0] == "builtins.RuntimeError"
    )
    assert "console_flows.py" in failure["traceback_str"] and "raise RuntimeError" in failure["traceback_str"]
    assert body["revert_path"][-2:] == ["second", "first"]  # newest first, the way revert goes
    assert atoms["first"]["revert_duration"] >= 0.05 and atoms["first"]["duration"] is not None
    assert "explode" in body["failures"]


def test_a_flow_without_a_factory_is_drawn_from_its_atoms_and_says_so(
    served: tuple[httpx.Client, Backend], tmp_path: Path
) -> None:
    http, backend = served
    _release(tmp_path, "a", "b", "c", "d")
    fd, run = run_in_background(backend, "tests.console_flows:graph", tmp_path, with_factory=False)
    assert run.wait(30) and not run.errors
    graph = http.get(f"/api/v1/flows/{fd.uuid}").json()["graph"]
    assert graph["source"] == "atoms" and graph["edges"] == [] and "names no factory" in graph["note"]
    assert {n["name"] for n in graph["nodes"]} == {"a", "b", "c", "d"}
    _, named = saved_flow(backend, "tests.console_flows:graph")
    with backend.get_connection() as conn:
        named.meta["factory"] = {"name": "tests.nowhere:flow", "args": [], "kwargs": {}}
        conn.update_flow_details(named)
    broken = http.get(f"/api/v1/flows/{named.uuid}").json()["graph"]
    assert broken["source"] == "atoms" and "'tests.nowhere:flow' could not be built here" in broken["note"]


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = "message"
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line[5:])


def test_live_events_follow_the_run_from_the_database(
    served: tuple[httpx.Client, Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, backend = served
    monkeypatch.setattr(flows_api, "POLL_SECONDS", 0.05)
    fd, run = run_in_background(backend, "tests.console_flows:graph", tmp_path)
    seen: list[tuple[str, str]] = []
    with http.stream("GET", f"/api/v1/flows/{fd.uuid}/events", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream.iter_lines())
        released: set[str] = set()
        for kind, data in events:
            seen.append((kind, data.get("name", "") + ":" + data["state"]))
            if kind == "atom" and data["state"] == "RUNNING" and data["name"] not in released:
                assert data["running"] is True
                released.add(data["name"])
                _release(tmp_path, data["name"])
            if kind == "flow" and data["state"] == "SUCCESS":
                break
    assert run.wait(10) and not run.errors
    atom_states = [s for k, s in seen if k == "atom"]
    for name in "abcd":
        assert atom_states.index(f"{name}:RUNNING") < atom_states.index(f"{name}:SUCCESS")
    assert atom_states.index("a:SUCCESS") < atom_states.index("b:RUNNING")
    assert ("flow", ":RUNNING") in seen and seen[-1] == ("flow", ":SUCCESS")


def test_the_openapi_document_types_the_flows_api(served: tuple[httpx.Client, Backend]) -> None:
    http, _ = served
    doc = http.get("/openapi.json").json()
    assert {"/api/v1/flows", "/api/v1/flows/{uuid}", "/api/v1/flows/{uuid}/events"} <= set(doc["paths"])
    ok = doc["paths"]["/api/v1/flows/{uuid}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/FlowOut")
    atom = doc["components"]["schemas"]["AtomOut"]["properties"]
    assert {"duration", "revert_duration", "failure", "state"} <= set(atom)
    events = doc["paths"]["/api/v1/flows/{uuid}/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in events


def test_a_waiting_atom_says_until_when_and_for_which_event(served: tuple[httpx.Client, Backend]) -> None:
    from flowkit.persistence.models import TaskDetail

    http, backend = served
    deadline = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    book, fd = LogBook("waits"), FlowDetail("approval", state="RUNNING")
    waiting = TaskDetail(
        "approve", state="RUNNING", meta={"wait": {"deadline": deadline.timestamp(), "event": "ok-1"}}
    )
    done = TaskDetail("done-waiting", state="SUCCESS", meta={"wait": {"deadline": 1.0, "event": None}})
    fd.add(waiting)
    fd.add(done)
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    atoms = {a["name"]: a for a in http.get(f"/api/v1/flows/{fd.uuid}").json()["atoms"]}
    assert atoms["approve"]["wait"] == {"deadline": "2026-12-01T12:00:00Z", "event": "ok-1"}
    assert atoms["done-waiting"]["wait"] is None  # only a wait still waiting says so


def test_a_stopping_server_ends_open_event_streams_cleanly(tmp_path: Path) -> None:
    import threading

    url = f"sqlite:///{tmp_path}/flows.db"
    backend = fresh_backend(url)
    book, fd = LogBook("b"), FlowDetail("f")
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    outcome: list[object] = []
    opened = threading.Event()

    def listen(base: str) -> None:
        try:
            with httpx.stream("GET", f"{base}/api/v1/flows/{fd.uuid}/events", timeout=30) as stream:
                opened.set()
                outcome.append(sum(1 for _ in stream.iter_lines()))
        except Exception as exc:
            outcome.append(exc)

    with serving(ServeSettings(persistence_url=url)) as base:
        listener = threading.Thread(target=listen, args=(base,), daemon=True)
        listener.start()
        assert opened.wait(10)
    listener.join(10)
    backend.close()
    assert not listener.is_alive() and len(outcome) == 1 and isinstance(outcome[0], int), outcome


def test_the_console_is_served_from_the_package_and_names_no_other_host(
    served: tuple[httpx.Client, Backend],
) -> None:
    import re

    http, _ = served
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert linked and all(link.startswith(("/static/", "#")) for link in linked), linked
    for link in (x for x in linked if x.startswith("/static/")):
        served_file = http.get(link)
        assert served_file.status_code == 200, link
        # nothing fetched from elsewhere at run time (the SVG namespace is a name, not a fetch)
        hosts = set(re.findall(r"https?://[^\s\"')]+", served_file.text)) - {"http://www.w3.org/2000/svg"}
        assert not hosts, (link, hosts)
    assert http.get("/static/console.js").headers["content-type"].startswith("text/javascript")
    assert http.get("/static/index.html").status_code == 404  # only the listed files
    assert http.get("/static/..%2F__init__.py").status_code == 404


def test_paging_ten_thousand_flows_through_the_api_sees_each_once(
    served: tuple[httpx.Client, Backend],
) -> None:
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

    http, backend = served
    assert isinstance(backend, SQLAlchemyBackend)
    bulk_flows(backend)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = http.get("/api/v1/flows", params=params).json()
        seen += [f["uuid"] for f in page["flows"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == N_FLOWS
    failed: list[str] = []
    params = {"limit": 30, "state": "FAILURE"}
    while True:
        page = http.get("/api/v1/flows", params=params).json()
        failed += [f["name"] for f in page["flows"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert failed == [f"flow-{i}" for i in range(N_FLOWS - 50, -1, -50)]  # newest first
    # each page is an index range scan: see test_flow_queries.test_paging_ten_thousand_flows_scans_the_index


def _item_atoms(map_out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for item in map_out["items"] for a in item["atoms"]}


def test_a_maps_items_come_from_its_child_flow_grouped_per_item_with_nested_maps(
    served: tuple[httpx.Client, Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.console import wait_for

    http, backend = served
    monkeypatch.setattr(flows_api, "POLL_SECONDS", 0.05)
    fd, run = run_in_background(backend, "tests.console_flows:mapped", tmp_path, engine="parallel")
    # while it runs: each item's state sums up its atoms'
    wait_for(lambda: _hosts(http, fd.uuid) is not None, what="the Map's items")
    _release(tmp_path, "hosts[0].fetch", "hosts[0].disks[0].wipe", "hosts[0].disks[1].wipe")
    wait_for(lambda: _item_states(http, fd.uuid)[0] == "SUCCESS", what="item 0 done")
    hosts = _hosts(http, fd.uuid)
    assert hosts is not None and hosts["size"] == 3 and hosts["shown"] == 3
    states = _item_states(http, fd.uuid)
    assert states[0] == "SUCCESS" and states[1] == states[2] == "RUNNING", states
    # the live stream sends the items' atoms and the child flows' states
    seen: list[tuple[str, str]] = []
    with http.stream("GET", f"/api/v1/flows/{fd.uuid}/events", timeout=30) as stream:
        for kind, data in _events(stream.iter_lines()):
            seen.append((kind, data.get("name", data.get("map", "")) + ":" + data["state"]))
            if seen[-1] == ("atom", "hosts[1].fetch:RUNNING"):
                _release(tmp_path, "hosts[1].fetch", "hosts[2].fetch")
            if seen[-1] == ("atom", "hosts[2].disks[1].wipe:RUNNING"):  # seen in a nested Map's child
                _release(tmp_path, *(f"hosts[{k}].disks[{j}].wipe" for k in (1, 2) for j in (0, 1)))
                _release(tmp_path, "finish")
            if kind == "flow" and data["state"] == "SUCCESS":
                break
    assert run.wait(30) and not run.errors
    assert ("atom", "hosts[0].disks[1].wipe:SUCCESS") in seen, "\n".join(
        map(str, seen)
    )  # a nested Map item atom
    assert seen.index(("atom", "hosts[2].disks[1].wipe:RUNNING")) < seen.index(
        ("atom", "hosts[2].disks[1].wipe:SUCCESS")
    )
    assert ("map", "hosts:SUCCESS") in seen and ("map", "hosts[2].disks:SUCCESS") in seen
    body = http.get(f"/api/v1/flows/{fd.uuid}").json()
    hosts = next(a for a in body["atoms"] if a["name"] == "hosts")["map"]
    assert [i["index"] for i in hosts["items"]] == [0, 1, 2] and hosts["state"] == "SUCCESS"
    atoms = _item_atoms(hosts)
    assert set(atoms) == {f"hosts[{k}].{n}" for k in range(3) for n in ("fetch", "disks")}
    assert all(a["state"] == "SUCCESS" and a["duration"] is not None for a in atoms.values())
    disks = atoms["hosts[1].disks"]["map"]
    assert set(_item_atoms(disks)) == {"hosts[1].disks[0].wipe", "hosts[1].disks[1].wipe"}
    assert [i["state"] for i in disks["items"]] == ["SUCCESS", "SUCCESS"]
    assert next(a for a in body["atoms"] if a["name"] == "finish")["map"] is None


def _hosts(http: httpx.Client, uuid: str) -> dict[str, Any] | None:
    body = http.get(f"/api/v1/flows/{uuid}").json()
    found = next((a["map"] for a in body["atoms"] if a["name"] == "hosts"), None)
    return found if found and found["items"] else None


def _item_states(http: httpx.Client, uuid: str) -> list[str]:
    hosts = _hosts(http, uuid)
    return [i["state"] for i in hosts["items"]] if hosts else []


def test_a_big_maps_items_are_bounded_and_a_saved_link_is_enough(
    served: tuple[httpx.Client, Backend],
) -> None:
    from flowkit.persistence.models import TaskDetail
    from flowkit.serve import map_items

    http, backend = served
    book, parent, child = (
        LogBook("big"),
        FlowDetail("big", state="RUNNING"),
        FlowDetail("big[*]", state="RUNNING"),
    )
    size = map_items.MAX_ITEMS + 50
    parent.add(TaskDetail("each", state="RUNNING", meta={"map": {"flow_uuid": child.uuid, "items": size}}))
    parent.add(TaskDetail("not-started-map", state="PENDING"))
    for k in range(size):
        child.add(TaskDetail(f"each[{k}].a", state="SUCCESS" if k % 3 == 0 else "PENDING"))
        child.add(TaskDetail(f"each[{k}].b", state="FAILURE" if k == 1 else "PENDING"))
    child.add(TaskDetail("eachother[0].a", state="SUCCESS"))  # another Map's name prefix: not an item
    book.add(parent)
    book.add(child)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    atoms = {a["name"]: a for a in http.get(f"/api/v1/flows/{parent.uuid}").json()["atoms"]}
    assert atoms["not-started-map"]["map"] is None
    each = atoms["each"]["map"]
    assert (each["flow_uuid"], each["state"], each["size"], each["shown"]) == (
        child.uuid,
        "RUNNING",
        size,
        map_items.MAX_ITEMS,
    )
    assert [i["index"] for i in each["items"]] == list(range(map_items.MAX_ITEMS))
    assert [i["state"] for i in each["items"][:4]] == ["RUNNING", "FAILURE", "PENDING", "RUNNING"]
    assert [a["name"] for a in each["items"][0]["atoms"]] == ["each[0].a", "each[0].b"]


def test_an_items_state_sums_up_its_atoms() -> None:
    from flowkit.serve.map_items import item_state
    from flowkit.states import AtomState as S

    assert item_state([]) == "PENDING"
    assert item_state([S.SUCCESS, S.IGNORE]) == "SUCCESS"
    assert item_state([S.SUCCESS, S.RUNNING, S.REVERT_FAILURE]) == "FAILURE"
    assert item_state([S.SUCCESS, S.REVERTING]) == "REVERTING"
    assert item_state([S.REVERTED, S.PENDING]) == "REVERTED"
    assert item_state([S.SUCCESS, S.PENDING]) == "RUNNING"
    assert item_state([S.PENDING, S.PENDING]) == "PENDING"
