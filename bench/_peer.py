"""The peers' venvs (TaskFlow 6.5.0, Celery 5.7.0, DBOS 3.4.0), and how to run a script in one or in ours.

Why a venv per peer: each pins its own stack (TaskFlow its networkx/oslo, Celery its kombu, DBOS its
SQLAlchemy) and none may be importable next to flowkit, or a benchmark could measure one while meaning
another. They live in the gitignored ``.bench/<key>-venv`` and are created on first use (a minute or
two each, PyPI only).

``python bench/_peer.py [taskflow|celery|dbos|all]`` creates them (if missing) and checks each imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_TIMEOUT_S = 3 * 3600


@dataclass(frozen=True)
class PeerEnv:
    """One peer: the packages of its venv, the import that proves it works, and its names in tables."""

    key: str
    label: str
    short: str
    packages: tuple[str, ...]
    probe: str

    @property
    def venv_dir(self) -> Path:
        return REPO_ROOT / ".bench" / f"{self.key}-venv"

    @property
    def python(self) -> Path:
        """The interpreter of the venv (it may not exist yet)."""
        return self.venv_dir / "bin" / "python"


TASKFLOW = PeerEnv(
    "taskflow",
    "TaskFlow 6.5.0",
    "TF",
    ("taskflow==6.5.0", "alembic", "sqlalchemy", "psycopg2-binary", "kazoo", "kombu"),
    "import taskflow.engines, taskflow.patterns.graph_flow",
)
CELERY = PeerEnv("celery", "Celery 5.7.0", "Celery", ("celery==5.7.0",), "import celery, kombu")
DBOS = PeerEnv("dbos", "DBOS 3.4.0", "DBOS", ("dbos==3.4.0", "psycopg2-binary"), "import dbos, psycopg2")
PEERS = {env.key: env for env in (TASKFLOW, CELERY, DBOS)}
VENV_DIR = TASKFLOW.venv_dir  # where the TaskFlow venv has always been


def peer_python(env: PeerEnv = TASKFLOW) -> Path:
    """The interpreter of a peer's venv (it may not exist yet)."""
    return env.python


def _imports(env: PeerEnv) -> bool:
    probe = [str(env.python), "-c", env.probe]
    return env.python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0


def ensure_peer_venv(quiet: bool = False, env: PeerEnv = TASKFLOW) -> Path:
    """Create a peer's venv and install it if its probe import does not already work there."""
    if _imports(env):
        return env.python
    out = subprocess.DEVNULL if quiet else None
    print(f"creating the {env.label} peer venv in {env.venv_dir} ...", file=sys.stderr, flush=True)
    if not env.python.exists():
        venv.EnvBuilder(with_pip=True).create(env.venv_dir)
    subprocess.run(
        [str(env.python), "-m", "pip", "install", "--quiet", *env.packages], check=True, stdout=out
    )
    if not _imports(env):
        raise RuntimeError(f"{env.probe!r} still fails in {env.venv_dir}")
    return env.python


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
    script_name: str, args: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT_S, env: PeerEnv = TASKFLOW
) -> dict[str, Any]:
    """Run a ``bench/`` script inside a peer's venv (creating it if needed) and parse its JSON."""
    return run_json(ensure_peer_venv(env=env), script_name, args, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or ["taskflow"]
    for env in PEERS.values() if names == ["all"] else [PEERS[name] for name in names]:
        python = ensure_peer_venv(env=env)
        package = env.packages[0].split("==")[0]
        version = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m;print(m.version({package!r}))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"peer venv ready: {python} ({package} {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
