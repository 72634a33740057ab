"""The REST API of ``flowkit serve``, through the real HTTP server (a ``flowkit serve`` process) on SQLite
and PostgreSQL: jobs, operator verbs, the fleet, OpenAPI, tokens, and bad input answered with a 4xx."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conductor import Conductor
from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.jobboard.fleet import Heartbeat, Member
from tests.support.conductors import running
from tests.support.serve import serving
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("zookeeper", marks=pytest.mark.zookeeper),
    ]
)
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(persistence, board): one SQLite file for both (the embedded default), one PostgreSQL database
    for both, or SQLite flows with a ZooKeeper board."""
    sqlite = f"sqlite:///{tmp_path}/flows.db"
    if request.param == "sqlite":
        return sqlite, sqlite
    if request.param == "zookeeper":
        return sqlite, str(request.getfixturevalue("zk_url"))
    url: str = request.getfixturevalue("postgres_url")
    return url, url


@pytest.fixture
def database(urls: tuple[str, str]) -> str:
    return urls[0]


@pytest.fixture
def board(urls: tuple[str, str]) -> Iterator[JobBoard]:
    made = boards.fetch(f"b-{secrets.token_hex(4)}", urls[1], persistence=urls[0])
    made.connect()
    yield made
    made.close()


@pytest.fixture
def api(board: JobBoard, urls: tuple[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    persistence, board_url = urls
    args = ["--persistence", persistence, "--board-name", board.name, "--allow", "tests.ops_flows"]
    if board_url != persistence:
        args += ["--board", board_url]
    with serving(tmp_path / "serve.log", *args) as client:
        yield client


@contextlib.contextmanager
def conducting(board: JobBoard, database: str) -> Iterator[Conductor]:
    with running(Conductor("c1", board, database, wait_timeout=0.1, heartbeat=0.2)) as conductor:
        yield conductor


def _job(api: httpx.Client, uuid: str) -> dict[str, object]:
    response = api.get(f"/api/v1/jobs/{uuid}")
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


def test_openapi_describes_every_route_with_its_models(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{uuid}",
        "/api/v1/jobs/{uuid}/requeue",
        "/api/v1/jobs/{uuid}/trash",
        "/api/v1/flows/{uuid}/retry",
        "/api/v1/flows/{uuid}/resume",
        "/api/v1/jobs/{uuid}/cancel",
        "/api/v1/flows/{uuid}/cancel",
        "/api/v1/events/{name}",
        "/api/v1/fleet",
        "/healthz",
    ):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert {"JobOut", "JobPage", "NewJob", "MemberOut", "Problem"} <= set(schemas)
    assert set(schemas["JobOut"]["properties"]) >= {"uuid", "state", "owner", "attempts", "flow_uuid"}


def test_post_a_job_watch_it_run_retry_its_flow(
    api: httpx.Client, board: JobBoard, database: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    posted = api.post("/api/v1/jobs", json={"factory": "tests.ops_flows:gated", "store": {"gate": str(gate)}})
    assert posted.status_code == 201, posted.text
    job = posted.json()
    assert job["state"] == "UNCLAIMED" and job["name"] == "gated"
    listed = api.get("/api/v1/jobs", params={"state": "UNCLAIMED"}).json()
    assert [j["uuid"] for j in listed["jobs"]] == [job["uuid"]]

    with conducting(board, database):
        wait_until(lambda: _job(api, job["uuid"][:8])["state"] == "COMPLETE", 30, "the job consumed")
        done = _job(api, job["uuid"][:8])
        assert done["owner"] == "c1"
        assert api.get("/api/v1/jobs", params={"history": "false"}).json()["total"] == 0
        assert api.get("/api/v1/jobs", params={"owner": "c1"}).json()["jobs"][0]["uuid"] == job["uuid"]
        fleet = api.get("/api/v1/fleet").json()
        assert [(m["name"], m["status"]) for m in fleet] == [("c1", "alive")]

        gate.unlink()
        retried = api.post(f"/api/v1/flows/{str(job['flow_uuid'])[:8]}/retry")
        assert retried.status_code == 201, retried.text
        again = retried.json()
        assert again["flow_uuid"] == job["flow_uuid"] and again["uuid"] != job["uuid"]
        wait_until(lambda: _job(api, again["uuid"])["state"] == "COMPLETE", 30, "the retried job consumed")
    conflict = api.post(f"/api/v1/flows/{job['flow_uuid']}/retry")
    assert conflict.status_code == 409 and "SUCCESS" in conflict.json()["detail"]


def test_jobs_are_paged_newest_first(api: httpx.Client, board: JobBoard) -> None:
    posted = [board.post(f"j{i}").uuid for i in range(7)]
    pages = [api.get("/api/v1/jobs", params={"limit": 3, "offset": o}).json() for o in (0, 3, 6)]
    assert [p["total"] for p in pages] == [7, 7, 7] and [p["offset"] for p in pages] == [0, 3, 6]
    seen = [j["uuid"] for p in pages for j in p["jobs"]]
    assert seen == list(reversed(posted))


def test_requeue_and_trash(api: httpx.Client, board: JobBoard) -> None:
    aside, waiting = board.post("aside"), board.post("waiting")
    board.claim(aside, "c9")
    board.set_aside(aside, "c9", "poison")
    assert _job(api, aside.uuid)["state"] == "SET_ASIDE"

    requeued = api.post(f"/api/v1/jobs/{aside.uuid[:6]}/requeue")
    assert requeued.status_code == 200, requeued.text
    assert requeued.json()["state"] == "UNCLAIMED" and requeued.json()["attempts"] == 0

    trashed = api.post(f"/api/v1/jobs/{waiting.uuid}/trash", json={"reason": "not wanted"})
    assert trashed.status_code == 200, trashed.text
    assert trashed.json()["state"] == "TRASHED" and trashed.json()["last_reason"] == "not wanted"

    board.claim(board.get_job(aside.uuid), "c9")
    busy = api.post(f"/api/v1/jobs/{aside.uuid}/trash")
    assert busy.status_code == 409 and "CLAIMED" in busy.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "named"),
    [
        ("get", "/api/v1/jobs/zz!!", None, 400, "'zz!!' is not a uuid"),
        ("get", "/api/v1/jobs/0123abcd", None, 404, "0123abcd"),
        ("post", "/api/v1/jobs/0123abcd/requeue", None, 404, "0123abcd"),
        ("post", "/api/v1/flows/0123abcd/retry", None, 404, "0123abcd"),
        ("post", "/api/v1/flows/not-hex!/resume", None, 400, "not a uuid"),
        ("post", "/api/v1/jobs", {"factory": "no colon here"}, 400, "no colon here"),
        ("post", "/api/v1/jobs", {"factory": "os:system"}, 400, "os:system"),
        ("post", "/api/v1/jobs", {"factory": "tests.ops_flows:gated", "store": [1, 2]}, 422, "store"),
        ("post", "/api/v1/jobs", {"store": {}}, 422, "factory"),
        ("post", "/api/v1/jobs", {"factory": "tests.ops_flows:gated", "priority": 9}, 422, "priority"),
        ("get", "/api/v1/jobs?state=BOGUS", None, 422, "state"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    api: httpx.Client, method: str, path: str, body: object, status: int, named: str
) -> None:
    response = api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert named in response.text
    assert "Traceback" not in response.text


def test_ambiguous_prefix_is_a_400_listing_the_candidates(api: httpx.Client, board: JobBoard) -> None:
    jobs = [board.post(f"j{i}") for i in range(40)]  # 40 uuids, 16 hex digits: some first digit repeats
    first = max("0123456789abcdef", key=lambda c: sum(j.uuid[0] == c for j in jobs))
    same = [j.uuid for j in jobs if j.uuid[0] == first]
    response = api.get(f"/api/v1/jobs/{first}")
    assert response.status_code == 400 and f"matches {len(same)}" in response.json()["detail"]


def test_fleet_lists_heartbeats(api: httpx.Client, board: JobBoard) -> None:
    beat = Heartbeat(board, lambda: Member("c7", running=("job-x",)), interval=0.2)
    beat.start()
    try:
        (member,) = api.get("/api/v1/fleet").json()
        assert member["name"] == "c7" and member["status"] == "alive" and member["running"] == ["job-x"]
    finally:
        beat.stop()
    assert api.get("/api/v1/fleet").json()[0]["status"] == "stopped"


def test_metrics_and_health_over_http(api: httpx.Client, board: JobBoard) -> None:
    board.post("one")
    board.post("two")
    text = api.get("/metrics").text
    assert 'flowkit_board_jobs{state="UNCLAIMED"} 2.0' in text
    assert 'flowkit_up{part="persistence"} 1.0' in text
    health = api.get("/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True, "board": "ok", "persistence": "ok"}


def test_cancel_a_running_job_and_send_an_event_through_the_api(
    api: httpx.Client, board: JobBoard, database: str
) -> None:
    napping = api.post(
        "/api/v1/jobs",
        json={"factory": "tests.ops_flows:napping", "store": {"seconds": 1}, "kwargs": {"steps": 30}},
    )
    waiting = api.post("/api/v1/jobs", json={"factory": "tests.ops_flows:approval", "store": {"ticket": 7}})
    assert napping.status_code == waiting.status_code == 201, (napping.text, waiting.text)
    nap, wait = napping.json(), waiting.json()
    with conducting(board, database):
        wait_until(lambda: _job(api, nap["uuid"])["state"] == "CLAIMED", 30, "the napping job running")
        cancelled = api.post(f"/api/v1/jobs/{nap['uuid'][:8]}/cancel", json={"reason": "operator asked"})
        assert cancelled.status_code == 200, cancelled.text
        wait_until(lambda: _job(api, nap["uuid"])["state"] == "CANCELLED", 30, "the job cancelled")
        assert api.get(f"/api/v1/flows/{nap['flow_uuid']}").json()["state"] == "REVERTED"
        wait_until(lambda: _job(api, wait["uuid"])["state"] == "WAITING", 30, "the approval job parked")
        sent = api.post("/api/v1/events/approve-7", json={"payload": {"by": "ops"}})
        assert sent.status_code == 202, sent.text
        wait_until(lambda: _job(api, wait["uuid"])["state"] == "COMPLETE", 30, "the approval job done")
    over = api.post(f"/api/v1/jobs/{nap['uuid']}/cancel", json={"reason": "again"})
    assert over.status_code == 409 and "CANCELLED" in over.json()["detail"]
    assert api.post("/api/v1/jobs/zz/cancel", json={"reason": "x"}).status_code == 400
