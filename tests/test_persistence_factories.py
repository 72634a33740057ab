"""Flow factories: record how to rebuild a flow in its flow detail, rebuild it elsewhere and resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit import engines
from flowkit.exceptions import InvalidFlowError, NotSerializableError
from flowkit.factory import FactoryDetails
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from tests.crash_flows import make_flow
from tests.support.persistence import fresh_backend, lines, saved_flow, saved_states


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = fresh_backend(f"sqlite:///{tmp_path}/flows.db")
    yield b
    b.close()


def _saved_detail(
    backend: Backend, factory: object, args: list[object], kwargs: dict[str, object]
) -> FlowDetail:
    book = LogBook("factories")
    fd = book.add(FlowDetail("crash"))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    engines.save_factory_details(fd, factory, args, kwargs, backend=backend)
    return fd


def test_save_factory_details_records_an_import_path(backend: Backend, tmp_path: Path) -> None:
    fd = _saved_detail(backend, make_flow, [str(tmp_path)], {"fail": None})
    assert fd.meta["factory"] == {
        "name": "tests.crash_flows:make_flow",
        "args": [str(tmp_path)],
        "kwargs": {"fail": None},
    }
    assert saved_flow(backend, fd.uuid).meta["factory"] == fd.meta["factory"]


def test_load_from_detail_rebuilds_and_runs_the_flow(backend: Backend, tmp_path: Path) -> None:
    fd = _saved_detail(backend, make_flow, [str(tmp_path)], {})
    with backend.get_connection() as conn:
        loaded = conn.get_flow_detail(fd.uuid)
    engine = engines.load_from_detail(loaded, backend=backend, store={"extra": 1})
    engine.run()
    assert saved_states(backend, fd.uuid) == dict.fromkeys("abcd", "SUCCESS")
    assert lines(tmp_path / "a.execute") == 1 and engine.storage.fetch("extra") == 1
    again = engines.load_from_detail(fd.uuid, backend=backend)  # by uuid: already done, nothing reruns
    again.run()
    assert lines(tmp_path / "a.execute") == 1 and again.storage.fetch("extra") == 1  # the saved store


def test_load_from_detail_without_a_backend_resumes_from_the_object(backend: Backend, tmp_path: Path) -> None:
    fd = _saved_detail(backend, make_flow, [str(tmp_path)], {})
    engines.load_from_detail(fd, backend=backend).run()
    engine = engines.load_from_detail(saved_flow(backend, fd.uuid))
    engine.run()
    assert lines(tmp_path / "d.execute") == 1


def test_a_factory_that_cannot_be_imported_is_a_clear_error(backend: Backend) -> None:
    fd = FlowDetail("gone", meta={"factory": {"name": "no_such_module.flows:make", "args": [], "kwargs": {}}})
    with pytest.raises(InvalidFlowError, match="no_such_module"):
        engines.load_from_detail(fd, backend=backend)
    fd.meta["factory"]["name"] = "tests.crash_flows:no_such_factory"
    with pytest.raises(InvalidFlowError, match="no_such_factory"):
        engines.load_from_detail(fd, backend=backend)
    with pytest.raises(InvalidFlowError, match="names no factory"):
        engines.load_from_detail(FlowDetail("none"), backend=backend)


def test_allow_limits_which_modules_a_flow_detail_may_import(backend: Backend, tmp_path: Path) -> None:
    fd = _saved_detail(backend, make_flow, [str(tmp_path)], {})
    with pytest.raises(InvalidFlowError, match="not under an allowed prefix"):
        engines.load_from_detail(fd, backend=backend, allow=["mypkg"])
    engines.load_from_detail(fd, backend=backend, allow=["tests"]).run()


def test_factories_must_be_importable_and_their_arguments_json() -> None:
    fd = FlowDetail("f")
    with pytest.raises(InvalidFlowError, match="lambda"):
        engines.save_factory_details(fd, lambda: None)

    def nested() -> None: ...

    with pytest.raises(InvalidFlowError, match="nested function"):
        engines.save_factory_details(fd, nested)
    with pytest.raises(NotSerializableError, match="factory arguments"):
        engines.save_factory_details(fd, make_flow, [object()])
    assert "factory" not in fd.meta


def test_the_factory_record_is_typed_and_reads_back_as_saved(backend: Backend, tmp_path: Path) -> None:
    fd = _saved_detail(backend, make_flow, [str(tmp_path)], {"fail": None})
    details = FactoryDetails.from_flow_detail(saved_flow(backend, fd.uuid))
    assert details == FactoryDetails("tests.crash_flows:make_flow", (str(tmp_path),), {"fail": None})
    assert FactoryDetails.from_flow_detail(FlowDetail("none")) is None


@pytest.mark.parametrize("bad", [{"args": 5}, {"args": "abc"}, {"kwargs": ["x"]}])
def test_a_factory_record_with_malformed_arguments_is_a_clear_error(
    backend: Backend, bad: dict[str, object]
) -> None:
    """Written by hand or by another tool: a record whose arguments are not a list and a mapping."""
    record = {"name": "tests.crash_flows:make_flow", "args": [], "kwargs": {}} | bad
    fd = FlowDetail("hand-written", meta={"factory": record})
    with pytest.raises(InvalidFlowError, match=r"'hand-written'.*not a list and a mapping"):
        engines.load_from_detail(fd, backend=backend)
