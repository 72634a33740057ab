"""Embedding flowkit: an in-memory run imports no server client; a missing extra says what to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, engines, extras
from flowkit.compiler import compile_flow
from flowkit.exceptions import FlowkitError, MissingExtraError
from flowkit.jobboard import backends as board_backends
from flowkit.persistence import backends as persistence_backends

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("psycopg2", "kazoo", "kombu", "alembic", "networkx")

IN_MEMORY_RUN = """
import sys
import flowkit
from flowkit import FunctorTask, LinearFlow, UnorderedFlow, engines

def flow():
    return LinearFlow("embedded").add(
        FunctorTask(lambda: 2, name="two", provides="x"),
        UnorderedFlow("fan").add(*(FunctorTask(lambda x: x, name=f"copy-{i}") for i in range(20))),
        FunctorTask(lambda x: x * 3, name="six", provides="y"),
    )

assert engines.run(flow())["y"] == 6
assert engines.run(flow(), engine="parallel", backend="memory://")["y"] == 6
print(" ".join(sorted(m for m in OPTIONAL if m in sys.modules)) or "-")
"""


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_an_in_memory_flow_imports_no_optional_dependency() -> None:
    assert _python(IN_MEMORY_RUN.replace("OPTIONAL", repr(OPTIONAL))) == "-"


def test_python_dash_m_flowkit_is_the_flowkit_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flowkit", "graph", "tests.example_flows:linear", "--format", "mermaid"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "flowchart TD" in proc.stdout and '"step-b"' in proc.stdout


def test_every_extra_is_declared_and_all_holds_them() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(declared)
    assert declared["all"] == [f"flowkit[{','.join(extras.EXTRAS)}]"]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    client_packages = {"psycopg2-binary", "kazoo", "kombu", "networkx"}
    assert not [d for d in core if d.split(">")[0].split("=")[0] in client_packages]


# -- a missing extra -------------------------------------------------------------------------------
# sys.modules[name] = None makes the module unimportable (and invisible to find_spec) for one test.


def _flow() -> LinearFlow:
    return LinearFlow("f").add(FunctorTask(lambda: 1, name="one", provides="x"))


MISSING: list[tuple[str, str, Any]] = [
    ("psycopg2", "postgres", lambda: persistence_backends.fetch("postgresql://flowkit@127.0.0.1/nowhere")),
    ("psycopg2", "postgres", lambda: persistence_backends.fetch("postgres://flowkit@127.0.0.1/nowhere")),
    ("psycopg2", "postgres", lambda: board_backends.fetch("b", "postgresql://flowkit@127.0.0.1/nowhere")),
    ("kazoo", "zookeeper", lambda: board_backends.fetch("b", "zookeeper://127.0.0.1:2181/flowkit-test")),
    ("kombu", "amqp", lambda: engines.load(_flow(), engine="worker-based")),
    ("networkx", "graph", lambda: compile_flow(_flow()).graph),
]


@pytest.mark.parametrize(
    ("module", "extra", "use"), MISSING, ids=[f"{m[1]}-{i}" for i, m in enumerate(MISSING)]
)
def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, module: str, extra: str, use: Any) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as info:
        use()
    assert isinstance(info.value, FlowkitError)
    assert info.value.extra == extra
    assert f"pip install 'flowkit[{extra}]'" in str(info.value)
    assert repr(module) in str(info.value)


def test_sqlite_needs_no_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in OPTIONAL:
        if module != "alembic":
            monkeypatch.setitem(sys.modules, module, None)
    backend = persistence_backends.fetch(f"sqlite:///{tmp_path / 'flows.db'}")
    with backend.get_connection() as conn:
        conn.upgrade()
    assert engines.run(_flow(), backend=backend)["x"] == 1
    board = board_backends.fetch("b", f"sqlite:///{tmp_path / 'board.db'}")
    assert board is not None


def test_flowkit_worker_without_kombu_says_which_extra() -> None:
    # kombu blocked in a child process: the worker's command must name the extra, not crash deep inside.
    code = (
        "import sys; sys.modules['kombu'] = None\n"
        "from flowkit.workers.cli import main\n"
        "main(['--transport', 'amqp://127.0.0.1:1//', '--topic', 't', '--tasks', 'flowkit.demo.flow'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "pip install 'flowkit[amqp]'" in done.stderr
    assert "Traceback" not in done.stderr
