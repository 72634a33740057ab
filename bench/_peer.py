"""The TaskFlow 6.5.0 venv the peer benchmarks run in, and how to run a script in it or in ours.

Why a separate venv: TaskFlow pins its own networkx/oslo stack and must never be importable next to
flowkit, or a benchmark could measure one while meaning the other. It lives in the gitignored
``.bench/taskflow-venv`` and is created on first use (about a minute, PyPI only).

``python bench/_peer.py`` creates it (if missing) and checks that ``import taskflow`` works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = REPO_ROOT / ".bench" / "taskflow-venv"
PEER_PACKAGES = ("taskflow==6.5.0", "alembic", "sqlalchemy", "psycopg2-binary", "kazoo", "kombu")
DEFAULT_TIMEOUT_S = 3 * 3600


def peer_python() -> Path:
    """The interpreter of the peer venv (it may not exist yet)."""
    return VENV_DIR / "bin" / "python"


def _taskflow_imports(python: Path) -> bool:
    probe = [str(python), "-c", "import taskflow.engines, taskflow.patterns.graph_flow"]
    return python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0


def ensure_peer_venv(quiet: bool = False) -> Path:
    """Create the venv and install the peer if ``import taskflow`` does not already work there."""
    python = peer_python()
    if _taskflow_imports(python):
        return python
    out = subprocess.DEVNULL if quiet else None
    print(f"creating the TaskFlow peer venv in {VENV_DIR} ...", file=sys.stderr, flush=True)
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(VENV_DIR)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True, stdout=out)
    if not _taskflow_imports(python):
        raise RuntimeError(f"taskflow still does not import in {VENV_DIR}")
    return python


def parse_json_stdout(stdout: str) -> dict[str, Any]:
    """The last stdout line that is a JSON object: libraries may print above it, never after."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise ValueError(f"no JSON object on stdout; it ended with: {stdout[-300:]!r}")


def run_json(
    python: str | Path, script_name: str, args: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Run ``bench/<script_name>`` with ``python``; progress (stderr) passes through to the terminal."""
    cmd = [str(python), str(BENCH_DIR / script_name), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{script_name} exited {proc.returncode}")
    return parse_json_stdout(proc.stdout)


def run_peer(
    script_name: str, args: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Run a ``bench/`` script inside the TaskFlow venv (creating it if needed) and parse its JSON."""
    return run_json(ensure_peer_venv(), script_name, args, timeout)


def main() -> int:
    python = ensure_peer_venv()
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m;print(m.version('taskflow'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"peer venv ready: {python} (taskflow {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
