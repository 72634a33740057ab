"""A throw-away PostgreSQL server for fault tests: its own cluster, its own port, crashed at will.

The shared server on 5432 must never be stopped, so a test that needs the database to crash runs one
of these: ``initdb`` under a temporary directory, ``pg_ctl start`` on a free loopback port, and
:meth:`PgServer.crash` (``pg_ctl stop -m immediate``: every server process quits at once, WAL still in
shared memory is lost, the next start runs crash recovery) and :meth:`PgServer.start` again. The
server is stopped and its directory removed when the ``with`` block ends.

``initdb`` refuses to run as root; as root the server runs as the ``postgres`` user (``runuser``) and
its directory is given to that user. Without the binaries (``/usr/lib/postgresql/*/bin``) a test
skips locally and fails in CI: :func:`require_pg_binaries`.

Also usable outside pytest (``bench/faults_dbcrash.py``): only :func:`require_pg_binaries` needs it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import psycopg2

HOST = "127.0.0.1"
DBNAME = "flowkit"
COMMAND_TIMEOUT_S = 60.0
_RUN_AS = "postgres"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl`` (or those on PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for d in reversed(candidates):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def why_not_available() -> str | None:
    """None when a throw-away server can be made here; else the reason."""
    if find_pg_bin() is None:
        return "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root (initdb refuses) and there is no runuser to run it as another user"
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return f"running as root (initdb refuses) and there is no {_RUN_AS!r} user to run it as"
    return None


def require_pg_binaries() -> None:
    """Skip the current test (locally) or fail it (CI=true) unless a throw-away server can be made."""
    from tests.services import require_service

    reason = why_not_available()
    require_service("PostgreSQL server binaries", reason is None, reason or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class PgServer:
    """One PostgreSQL cluster in a temporary directory; ``with PgServer() as pg: pg.url ...``.

    ``settings`` are appended to its ``postgresql.conf`` (e.g. ``{"wal_writer_delay": "1s"}``).
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        reason = why_not_available()
        if reason is not None:
            raise RuntimeError(f"cannot make a PostgreSQL server here: {reason}")
        self.bin = find_pg_bin() or Path()
        self.settings = dict(settings or {})
        self.port = 0
        self.root = Path()
        self._restarts: list[threading.Thread] = []

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """The URL of the ``flowkit`` database (created by :meth:`setup`)."""
        return f"postgresql://postgres@{HOST}:{self.port}/{DBNAME}"

    # -- life cycle ---------------------------------------------------------------------------------

    def setup(self) -> PgServer:
        """initdb, start, create the database."""
        self.root = Path(tempfile.mkdtemp(prefix="flowkit-pg-"))
        try:
            if os.geteuid() == 0:
                user = pwd.getpwnam(_RUN_AS)
                os.chown(self.root, user.pw_uid, user.pw_gid)
            self._pg(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
            )
            self.port = _free_port()
            conf = {
                "port": str(self.port),
                "listen_addresses": f"'{HOST}'",
                "unix_socket_directories": f"'{self.root}'",
                "max_connections": "100",
                **self.settings,
            }
            with open(self.data / "postgresql.conf", "a") as f:
                f.writelines(f"{k} = {v}\n" for k, v in conf.items())
            self.start()
            conn = psycopg2.connect(host=HOST, port=self.port, user="postgres", dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DBNAME}")
            conn.close()
        except BaseException:
            self.teardown()
            raise
        return self

    def start(self) -> None:
        """Start the server (after a crash: crash recovery first) and wait until it takes connections."""
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"
        )

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: all server processes quit at once, as in a crash."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def crash_for(self, seconds: float) -> None:
        """Crash now and start again after ``seconds`` in a thread (joined by :meth:`wait_restarted`)."""
        self.crash()

        def later() -> None:
            time.sleep(seconds)
            self.start()

        t = threading.Thread(target=later, name="pg-restart", daemon=True)
        self._restarts.append(t)
        t.start()

    def wait_restarted(self, timeout: float = COMMAND_TIMEOUT_S) -> None:
        for t in self._restarts:
            t.join(timeout)
            if t.is_alive():
                raise AssertionError(
                    f"the PostgreSQL server on port {self.port} did not restart in {timeout:g} s"
                )
        self._restarts.clear()

    def teardown(self) -> None:
        """Stop the server (however it is) and remove its directory."""
        for t in self._restarts:
            t.join(COMMAND_TIMEOUT_S)
        if (self.data / "postmaster.pid").exists():
            try:
                self.crash()
            except (subprocess.SubprocessError, OSError):
                self._kill_postmaster()
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.root / "server.log").read_text()[-chars:]
        except OSError:
            return ""

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", _RUN_AS, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}\n"
                f"server log: {self.log_tail()}"
            )

    def __enter__(self) -> PgServer:
        return self.setup()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.teardown()
