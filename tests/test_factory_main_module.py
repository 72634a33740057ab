"""A flow factory defined in the program being run (``__main__``), recorded and resolved as TaskFlow does.

TaskFlow programs call ``engines.load_from_factory(create_flow, backend=...)`` with ``create_flow``
defined in the script itself, and resume by running the same script again; flowkit records such a
factory as ``"__main__:create_flow"``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from flowkit.exceptions import InvalidFlowError
from flowkit.factory import FactoryDetails, factory_path, resolve_factory
from flowkit.patterns.linear_flow import LinearFlow

PROGRAM = textwrap.dedent(
    """
    import sys
    from flowkit import engines, task
    from flowkit.patterns import linear_flow
    from flowkit.persistence import backends, models

    class Say(task.Task):
        def execute(self, word):
            print("said", word)

    def create_flow(word):
        return linear_flow.Flow("talk").add(Say("say"))

    backend = backends.fetch({"connection": sys.argv[1]})
    with backend.get_connection() as conn:
        conn.upgrade()
    if sys.argv[2] == "save":
        book = models.LogBook("book")
        engine = engines.load_from_factory(
            create_flow, factory_args=["hi"], backend=backend, book=book, store={"word": "hi"}
        )
        flow_detail = book.find(engine.storage.flow_uuid)
        print("factory", flow_detail.meta["factory"]["name"])
        print("ids", book.uuid, flow_detail.uuid)
    else:
        with backend.get_connection() as conn:
            flow_detail = conn.get_logbook(sys.argv[3]).find(sys.argv[4])
        engine = engines.load_from_detail(flow_detail, backend=backend)
        engine.run()
        print("resumed", engine.storage.get_flow_state())
    """
)


def _run(script: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_main_factory_is_saved_and_rebuilt_when_the_program_runs_again(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    saved = _run(script, url, "save").splitlines()
    assert saved[0] == "factory __main__:create_flow"
    book_id, flow_id = saved[1].split()[1:]
    assert _run(script, url, "resume", book_id, flow_id).splitlines() == ["said hi", "resumed SUCCESS"]


@pytest.fixture
def main_factory(monkeypatch: pytest.MonkeyPatch) -> types.FunctionType:
    """A factory put into this process's ``__main__``, as a script's own function is."""

    def make() -> LinearFlow:
        return LinearFlow("made")

    make.__module__, make.__qualname__ = "__main__", "fk_test_make"
    monkeypatch.setattr(sys.modules["__main__"], "fk_test_make", make, raising=False)
    return make


def test_a_main_factory_is_recorded_by_its_main_path(main_factory: types.FunctionType) -> None:
    assert factory_path(main_factory) == "__main__:fk_test_make"
    assert FactoryDetails.of(main_factory).build().name == "made"


def test_an_allow_list_finds_a_main_factory_only_when_it_names_main(main_factory: types.FunctionType) -> None:
    with pytest.raises(InvalidFlowError, match="'__main__' is not under an allowed prefix"):
        resolve_factory("__main__:fk_test_make", allow=["mypkg"])
    assert resolve_factory("__main__:fk_test_make", allow=["__main__"]) is main_factory


def test_a_main_factory_missing_from_this_program_says_where_it_resolves() -> None:
    with pytest.raises(
        InvalidFlowError, match=r"no attribute 'no_such_factory'.*only where that program runs"
    ):
        resolve_factory("__main__:no_such_factory")


def test_posting_a_job_with_a_main_factory_warns_who_can_run_it(
    main_factory: types.FunctionType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flowkit.jobboard import backends as boards

    board = boards.fetch("b", f"sqlite:///{tmp_path}/b.db", persistence=f"sqlite:///{tmp_path}/p.db")
    with board, caplog.at_level("WARNING", logger="flowkit.jobboard.posting"):
        board.post_flow(main_factory, name="j-main")
        board.post_flow("tests.job_flows:steps", name="j-module")
    warned = [r.getMessage() for r in caplog.records if r.name == "flowkit.jobboard.posting"]
    assert len(warned) == 1 and "'j-main'" in warned[0] and "__main__:fk_test_make" in warned[0]
    assert "only a conductor running in this same program" in warned[0]
