"""``flowkit serve`` as an operator starts it: the embedded default, tokens, refusing a public address
without one, and ``/healthz`` saying false (503) when the board or the database cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pg_server import PgServer, require_pg_binaries
from tests.support.serve import REPO, serving
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(120)


def test_a_token_guards_every_api_request_but_not_health(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/flows.db"
    with serving(tmp_path / "serve.log", "--persistence", db, "--token", "s3cret", token="s3cret") as api:
        assert api.get("/api/v1/jobs", headers={"Authorization": ""}).status_code == 401
        wrong = api.post("/api/v1/jobs", json={"factory": "a:b"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "token" in wrong.json()["detail"]
        assert api.get("/api/v1/flows", headers={"Authorization": ""}).status_code == 401
        assert api.get("/api/v1/jobs").status_code == 200
        assert api.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_a_public_address_without_a_token_is_refused_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWKIT_TOKEN"}
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowkit",
            "serve",
            "--persistence",
            f"sqlite:///{tmp_path}/f.db",
            "--host",
            "0.0.0.0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "refusing to serve on '0.0.0.0' without a token" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 10


def test_health_is_false_when_the_board_is_unreachable(tmp_path: Path) -> None:
    args = (
        "--persistence",
        f"sqlite:///{tmp_path}/flows.db",
        "--board",
        "postgresql://postgres@127.0.0.1:9/none",
    )
    with serving(tmp_path / "serve.log", *args) as api:
        started = time.monotonic()
        health = api.get("/healthz")
        assert time.monotonic() - started < 10
        assert health.status_code == 503
        body = health.json()
        assert body["ok"] is False and body["persistence"] == "ok" and "127.0.0.1:9" in body["board"]
        jobs = api.get("/api/v1/jobs")
        assert jobs.status_code == 503 and "Traceback" not in jobs.text
        assert 'flowkit_up{part="board"} 0.0' in api.get("/metrics").text


def test_health_follows_a_private_database_that_stops_and_comes_back(tmp_path: Path) -> None:
    require_pg_binaries()
    with PgServer() as pg, serving(tmp_path / "serve.log", "--persistence", pg.url) as api:
        assert api.get("/healthz").json()["ok"] is True
        pg.crash()
        started = time.monotonic()
        down = api.get("/healthz")
        assert time.monotonic() - started < 10
        assert down.status_code == 503
        assert down.json()["persistence"] != "ok", down.json()
        pg.start()
        wait_until(lambda: api.get("/healthz").status_code == 200, 30, "health back with the database")
