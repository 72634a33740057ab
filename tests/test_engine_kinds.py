"""Engine kinds come from a registry by name; the worker-based one is imported only when asked for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowkit import FunctorTask, LinearFlow, engines
from flowkit.exceptions import InvalidFlowError
from flowkit.persistence.backends.memory import MemoryBackend

ROOT = Path(__file__).resolve().parent.parent


def _flow() -> LinearFlow:
    return LinearFlow("kinds").add(FunctorTask(lambda: 1, name="one", provides="x"))


def test_an_unknown_engine_names_the_registered_ones() -> None:
    with pytest.raises(
        InvalidFlowError, match="unknown engine 'nope'; choose one of serial, parallel, worker-based"
    ):
        engines.load(_flow(), engine="nope")


@pytest.mark.parametrize("engine", ["serial", "worker-based"])
def test_kinds_without_an_executor_refuse_one(engine: str) -> None:
    with pytest.raises(InvalidFlowError, match=f"the {engine} engine takes no executor"):
        engines.load(_flow(), engine=engine, executor="threads")


def test_an_unknown_option_is_refused_before_anything_is_saved() -> None:
    backend = MemoryBackend()
    with pytest.raises(InvalidFlowError, match=r"unknown engine option\(s\): colour, size"):
        engines.load(_flow(), engine="parallel", backend=backend, colour="red", size=3)
    with backend.get_connection() as conn:
        assert list(conn.get_logbooks()) == []


def test_the_worker_based_kind_is_imported_on_first_use_only() -> None:
    script = textwrap.dedent(
        """
        import sys
        from flowkit import FunctorTask, LinearFlow, engines
        flow = LinearFlow("w").add(FunctorTask(lambda: 1, name="one"))
        engines.run(flow, engine="parallel")
        assert "flowkit.workers" not in sys.modules, "flowkit.workers imported without being asked for"
        engine = engines.load(flow, engine="worker-based", transport="memory://", topics=["t"])
        assert "flowkit.workers.engine" in sys.modules
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
