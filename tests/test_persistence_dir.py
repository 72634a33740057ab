"""The ``dir://`` backend beyond the shared contract: its files, its settings-dict form, many writers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from flowkit.exceptions import InvalidFormat, StorageError, UnknownBackendError
from flowkit.persistence import backends
from flowkit.persistence.backends.dir import DirBackend
from flowkit.persistence.models import FlowDetail, LogBook, TaskDetail


def _save_book(url: str, name: str) -> str:
    book = LogBook(name)
    fd = FlowDetail("flow")
    fd.add(TaskDetail("t1"))
    book.add(fd)
    with backends.fetch(url).get_connection() as conn:
        conn.save_logbook(book)
    return book.uuid


def test_one_json_file_per_logbook_read_by_a_new_backend(tmp_path: Path) -> None:
    url = f"dir://{tmp_path}/books"
    uuids = {_save_book(url, f"book-{i}") for i in range(3)}
    files = sorted((tmp_path / "books").glob("*.json"))
    assert {f.stem for f in files} == uuids
    doc = json.loads(files[0].read_text())
    assert doc["logbook"]["uuid"] == files[0].stem and len(doc["atomdetails"]) == 1
    with backends.fetch(f"file://{tmp_path}/books").get_connection() as conn:
        books = conn.get_logbooks()
    assert {b.uuid for b in books} == uuids
    assert [ad.name for b in books for fd in b for ad in fd] == ["t1"] * 3
    assert not list((tmp_path / "books").glob("*.tmp"))


def test_destroying_a_logbook_removes_its_file(tmp_path: Path) -> None:
    url = f"dir://{tmp_path}"
    keep, gone = _save_book(url, "keep"), _save_book(url, "gone")
    with backends.fetch(url).get_connection() as conn:
        conn.destroy_logbook(gone)
    assert [f.stem for f in tmp_path.glob("*.json")] == [keep]


def test_a_failed_unit_of_work_writes_nothing(tmp_path: Path) -> None:
    backend = backends.fetch(f"dir://{tmp_path}")
    book = LogBook("b")
    with backend.get_connection() as conn:

        def save_then_fail() -> None:
            conn.upsert_rows("logbooks", [{"uuid": book.uuid, "name": "b"}])
            raise RuntimeError("midway")

        with pytest.raises(RuntimeError):
            conn.run(save_then_fail)
        assert conn.get_logbooks() == []
    assert not list(tmp_path.glob("*.json"))


def test_taskflow_settings_dict_form(tmp_path: Path) -> None:
    made = backends.fetch({"connection": f"file://{tmp_path}/x", "path": str(tmp_path / "y")})
    assert isinstance(made, DirBackend) and made.path == tmp_path / "y"
    sqlite = backends.fetch({"connection": f"sqlite:///{tmp_path}/f.db"})
    assert sqlite.url.startswith("sqlite")
    sqlite.close()
    assert backends.fetch({"connection": "memory"}).url == "memory://"
    with pytest.raises(InvalidFormat, match="connection"):
        backends.fetch({"path": "/tmp"})
    with pytest.raises(UnknownBackendError):
        backends.fetch({"connection": "nosuch://x"})


def test_bad_urls_and_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidFormat, match="names no directory"):
        backends.fetch("dir://")
    (tmp_path / "broken.json").write_text("{not json")
    backend = backends.fetch(f"dir://{tmp_path}")
    with backend.get_connection() as conn, pytest.raises(StorageError, match="broken"):
        conn.get_logbooks()


def _writer(url: str, book_uuid: str, prefix: str, count: int) -> None:
    backend = backends.fetch(url)
    for i in range(count):
        with backend.get_connection() as conn:
            book = conn.get_logbook(book_uuid)
            book.add(FlowDetail(f"{prefix}-{i}"))
            conn.save_logbook(book)


def test_two_processes_adding_to_one_logbook_lose_nothing(tmp_path: Path) -> None:
    """Every unit rewrites the whole logbook file, so without the directory lock one writer's flow
    details would vanish under the other's."""
    url = f"dir://{tmp_path}"
    book_uuid = _save_book(url, "shared")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, book_uuid, p, 40)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with backends.fetch(url).get_connection() as conn:
        names = sorted(fd.name for fd in conn.get_logbook(book_uuid))
    expected = sorted(["flow"] + [f"{p}-{i}" for p in ("a", "b") for i in range(40)])
    lost = len(set(expected) - set(names))
    assert lost == 0 and names == expected
