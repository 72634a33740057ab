"""``flowkit db upgrade URL`` and ``flowkit show URL [UUID]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowkit import LinearFlow, Task, engines
from flowkit.cli.main import cli
from flowkit.persistence import backends
from flowkit.persistence.models import FlowDetail, LogBook


class Ok(Task):
    def execute(self) -> int:
        return 1


class Broken(Task):
    def execute(self) -> None:
        raise RuntimeError("disk full")


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/flows.db"


def test_db_upgrade_creates_the_schema_and_can_run_again(url: str) -> None:
    for _ in range(2):
        result = _invoke("db", "upgrade", url)
        assert result.exit_code == 0, result.output
        assert "schema at revision" in result.output
    backend = backends.fetch(url)
    with backend.get_connection() as conn:
        conn.validate()
    backend.close()


def test_show_lists_logbooks_then_a_flows_atoms(url: str) -> None:
    assert _invoke("db", "upgrade", url).exit_code == 0
    assert "no logbooks" in _invoke("show", url).output
    book = LogBook("cluster-42")
    fd = book.add(FlowDetail("create"))
    with pytest.raises(RuntimeError):
        engines.load(
            LinearFlow("create").add(Ok("prepare"), Broken("attach-disk")),
            backend=url,
            book=book,
            flow_detail=fd,
        ).run()

    listing = _invoke("show", url)
    assert listing.exit_code == 0
    assert "cluster-42" in listing.output and fd.uuid in listing.output and "REVERTED" in listing.output

    for uuid in (fd.uuid, book.uuid):
        shown = _invoke("show", url, uuid)
        assert shown.exit_code == 0, shown.output
        rows = {line.split()[0]: line for line in shown.output.splitlines() if line.startswith("  ")}
        assert "ATOM" in rows and "STATE" in rows["ATOM"] and "ATTEMPTS" in rows["ATOM"]
        assert "REVERTED" in rows["prepare"] and "task" in rows["prepare"]
        assert "RuntimeError: disk full" in rows["attach-disk"] and rows["attach-disk"].split()[4] == "1"
        assert "s " in rows["prepare"] or rows["prepare"].rstrip().endswith("s")  # a duration
        assert "reverting because 'attach-disk' failed" in shown.output


def test_show_an_unknown_uuid(url: str) -> None:
    _invoke("db", "upgrade", url)
    result = _invoke("show", url, "no-such-uuid")
    assert result.exit_code == 1 and "no logbook or flow detail 'no-such-uuid'" in result.output


def test_show_is_read_only(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = _invoke("show", f"sqlite:///{missing}")
    assert result.exit_code == 1 and "no such SQLite file" in result.output
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    result = _invoke("show", f"sqlite:///{empty}")
    assert result.exit_code == 1 and "flowkit db upgrade" in result.output
