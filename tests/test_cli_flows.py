"""``flowkit flows list`` and ``flowkit flows show UUID-PREFIX``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowkit.cli.main import cli
from flowkit.persistence import backends
from flowkit.persistence.models import FlowDetail, LogBook
from tests.support.console import run_in_background
from tests.support.persistence import backend_url, fresh_backend

KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    found = backend_url(request.param, request, tmp_path)
    fresh_backend(found).close()
    return found


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _save(url: str, *flows: FlowDetail) -> None:
    backend = backends.fetch(url)
    with backend.get_connection() as conn:
        book = LogBook("cli")
        for fd in flows:
            book.add(fd)
        conn.save_logbook(book)
    backend.close()


def test_list_filters_pages_and_prints_json(url: str) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    _save(
        url,
        FlowDetail("backup-db", state="SUCCESS", created_at=old, updated_at=old),
        FlowDetail("deploy-web", state="FAILURE", created_at=now - timedelta(minutes=5)),
        FlowDetail("deploy-api", state="RUNNING", created_at=now - timedelta(minutes=1)),
    )
    table = _invoke("flows", "list", "--persistence", url)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["UUID", "STATE", "CREATED", "UPDATED", "NAME"]
    assert [line.split()[-1] for line in lines[1:]] == ["deploy-api", "deploy-web", "backup-db"]
    recent = _invoke("flows", "list", "--persistence", url, "--since", "1h", "--name", "DEPLOY", "-o", "json")
    body = json.loads(recent.output)
    assert [f["name"] for f in body["flows"]] == ["deploy-api", "deploy-web"] and body["next_cursor"] is None
    failed = json.loads(
        _invoke("flows", "list", "--persistence", url, "--state", "FAILURE", "-o", "json").output
    )
    assert [f["name"] for f in failed["flows"]] == ["deploy-web"]
    first = json.loads(_invoke("flows", "list", "--persistence", url, "--limit", "2", "-o", "json").output)
    assert len(first["flows"]) == 2 and first["next_cursor"]
    rest = _invoke(
        "flows", "list", "--persistence", url, "--limit", "2", "--cursor", first["next_cursor"], "-o", "json"
    )
    assert [f["name"] for f in json.loads(rest.output)["flows"]] == ["backup-db"]
    bad = _invoke("flows", "list", "--persistence", url, "--since", "yesterday")
    assert bad.exit_code == 2 and "'yesterday' is neither a time ago" in bad.output


def test_show_takes_a_unique_prefix_and_prints_atoms_times_and_failures(url: str, tmp_path: Path) -> None:
    for name in ("first", "second"):
        (tmp_path / name).touch()
    backend = backends.fetch(url)
    try:
        fd, run = run_in_background(backend, "tests.console_flows:failing", tmp_path)
        assert run.wait(30)
    finally:
        backend.close()
    shown = _invoke("flows", "show", fd.uuid[:6], "--persistence", url)
    assert shown.exit_code == 0, shown.output
    assert f"flow 'doomed' {fd.uuid}  REVERTED" in shown.output
    header = next(line for line in shown.output.splitlines() if "ATOM" in line)
    assert header.split() == ["ATOM", "KIND", "STATE", "ATTEMPTS", "EXECUTE", "REVERT", "FAILURE"]
    first = next(line for line in shown.output.splitlines() if line.strip().startswith("first "))
    assert (
        first.split()[2] == "REVERTED" and first.split()[4].endswith("s") and first.split()[5].endswith("s")
    )
    assert "explode failed: RuntimeError: explode cannot go on" in shown.output
    assert 'raise RuntimeError(f"{self.name} cannot go on")' in shown.output
    body = json.loads(_invoke("flows", "show", fd.uuid, "--persistence", url, "-o", "json").output)
    assert body["state"] == "REVERTED" and [a["name"] for a in body["atoms"]] == [
        "first",
        "second",
        "explode",
    ]
    assert body["atoms"][0]["revert_duration"] >= 0.05


def test_show_names_a_missing_or_ambiguous_prefix(url: str) -> None:
    _save(
        url,
        FlowDetail("a", "beef0000-0000-4000-8000-000000000001"),
        FlowDetail("b", "beef0000-0000-4000-8000-000000000002"),
    )
    ambiguous = _invoke("flows", "show", "beef", "--persistence", url)
    assert ambiguous.exit_code == 1 and "'beef' starts several flow uuids" in ambiguous.output
    missing = _invoke("flows", "show", "cafe", "--persistence", url)
    assert missing.exit_code == 1 and "no flow whose uuid starts with 'cafe'" in missing.output
    assert (
        "flow 'b'"
        in _invoke("flows", "show", "beef0000-0000-4000-8000-000000000002", "--persistence", url).output
    )


def test_a_missing_database_is_one_line_of_error(tmp_path: Path) -> None:
    result = _invoke("flows", "list", "--persistence", f"sqlite:///{tmp_path}/nothing.db")
    assert result.exit_code == 1 and "no such SQLite file" in result.output
