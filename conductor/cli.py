"""``flowkit-conductor``: the daemon that runs jobs from a board until SIGTERM or SIGINT.

At start it checks that the board and persistence answer within ``--startup-timeout`` seconds; if
one does not, it prints one line naming it (its URL without the password) and exits 1.

On either signal, at any moment, it stops claiming, suspends the flows it runs at their next safe
point, abandons their jobs (not counted against them) so another conductor resumes them, and exits 0;
atoms still running after ``--grace`` seconds are left to the board, which releases the claims as the
process ends. A second signal exits at once (status 1).

The main thread only waits: the conductor's loop runs in a thread of its own, so no blocking call
(a database that does not answer, a retry's backoff) can keep the process from reacting to a signal,
and the signal handler only sets a flag (it never takes a lock the interrupted code might hold).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

import click

import flowkit
from conductor import logs, outage, startup
from conductor.loop import Conductor
from flowkit import extras
from flowkit.cli._common import persistence_option
from flowkit.exceptions import FlowkitError
from flowkit.jobboard import backends as boards
from flowkit.persistence import backends as persistence_backends

LOG = logging.getLogger("conductor")
STOP_MARGIN = 1.0
"""Seconds the daemon waits, past ``--grace`` (or at once with no job running), for its loop to end."""


class _Signals:
    """SIGTERM and SIGINT: the first one asks to stop, another one to exit now. Only flags are set here."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        """Set once the conductor was told to stop: wakes storage retries."""
        self.count = 0
        self.last = ""

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.last = signal.Signals(signum).name
        self.stop.set()


def _prefixes(values: Sequence[str]) -> list[str] | None:
    """``--allow a --allow b,c`` -> [a, b, c]; no ``--allow`` at all -> None (any factory)."""
    out = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return out or None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--board",
    "board_url",
    envvar="FLOWKIT_BOARD",
    required=True,
    metavar="URL",
    help="Job board URL: zookeeper://host:port/path?timeout=S, sqlite:///file, postgresql://... "
    "[env FLOWKIT_BOARD]",
)
@persistence_option("the jobs' flows")
@click.option(
    "--name",
    default=lambda: f"{socket.gethostname()}-{os.getpid()}",
    show_default="HOST-PID",
    help="This conductor's name: the owner of its claims",
)
@click.option(
    "--board-name",
    default="flowkit",
    show_default=True,
    envvar="FLOWKIT_BOARD_NAME",
    help="The board's name (SQL boards keep one set of jobs per name)",
)
@click.option("--engine", type=click.Choice(["serial", "parallel"]), default="serial", show_default=True)
@click.option(
    "--max-jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs run at the same time"
)
@click.option(
    "--allow",
    multiple=True,
    metavar="MODULE_PREFIX",
    envvar="FLOWKIT_ALLOW",
    help="Only run factories defined under this module prefix (repeat, or separate with commas); "
    "others are set aside, never called. Default: any importable callable (logged as a warning) "
    "[env FLOWKIT_ALLOW]",
)
@click.option(
    "--grace",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for running atoms when stopping",
)
@click.option(
    "--startup-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds the board and persistence have to answer at start; else exit 1 naming the one that did not",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between this conductor's announcements in the board's fleet (`flowkit fleet`); "
    "it is shown gone after missing three",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="FLOWKIT_METRICS_PORT",
    help="Serve /metrics (Prometheus) and /healthz on 127.0.0.1:PORT (needs flowkit[serve]) "
    "[env FLOWKIT_METRICS_PORT]",
)
@click.option(
    "--otel",
    is_flag=True,
    envvar="FLOWKIT_OTEL",
    help="Trace each flow and atom with OpenTelemetry (flowkit[otel]); spans go to the global tracer "
    "provider (run under opentelemetry-instrument, or configure the SDK) [env FLOWKIT_OTEL]",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="FLOWKIT_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="[env FLOWKIT_LOG_LEVEL]",
)
@click.version_option(flowkit.__version__, prog_name="flowkit-conductor")
def cli(
    board_url: str,
    persistence_url: str,
    name: str,
    board_name: str,
    engine: str,
    max_jobs: int,
    allow: tuple[str, ...],
    grace: float,
    startup_timeout: float,
    heartbeat: float,
    metrics_port: int | None,
    otel: bool,
    log_level: str,
) -> None:
    """Claim jobs from a flowkit job board and run their flows, until SIGTERM or SIGINT."""
    signals = _Signals()
    signals.install()  # before anything that may block: a signal during start-up is honoured too
    logs.configure(log_level)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: factories beside the caller import
    try:
        board = boards.fetch(board_name, board_url, persistence=persistence_url)
        persistence = persistence_backends.fetch(persistence_url)
        if not startup.check(board, board_url, persistence_url, startup_timeout, signals.stop):
            LOG.info("conductor %r: %s during start-up, exiting", name, signals.last)
            _exit_now(0)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    # A stop request ends storage retries at once: a flow cannot be saved while the database is away,
    # so there is nothing to wait for, and SIGTERM during an outage must not wait out the backoff.
    # (Set after conductor.stop(), so that a job whose retrying ends knows why.)
    backoff = getattr(persistence, "backoff", None)
    if backoff is not None:
        persistence.backoff = dataclasses.replace(backoff, wake=signals.wake)  # type: ignore[attr-defined]
    conductor = Conductor(
        name,
        board,
        persistence,
        engine=engine,
        max_jobs=max_jobs,
        allow=_prefixes(allow),
        grace=grace,
        heartbeat=heartbeat,
    )
    if metrics_port is not None:
        _serve_metrics(conductor, metrics_port)
    if otel:
        try:
            from flowkit.listeners.otel import TracingListener

            conductor.engine_hooks.append(TracingListener.hook())
        except FlowkitError as exc:
            raise click.ClickException(str(exc)) from exc
        LOG.info("conductor %r: tracing flows with OpenTelemetry", name)
    failed: list[BaseException] = []

    def loop() -> None:
        try:
            conductor.run()
        except BaseException as exc:
            failed.append(exc)
            conductor.stop()
        finally:
            board.close()

    thread = threading.Thread(target=loop, name=f"conductor-{name}", daemon=True)
    thread.start()
    while thread.is_alive() and not signals.stop.is_set() and not failed:
        thread.join(0.1)
    if signals.stop.is_set():
        _stop(conductor, thread, signals, grace)
    if failed:
        thread.join(STOP_MARGIN)  # closing the board; a board that does not answer is left behind
        if isinstance(failed[0], FlowkitError):
            raise click.ClickException(f"conductor {name!r}: {outage.reason(failed[0])}")
        raise failed[0]
    LOG.info("conductor %r: stopped (%s)", name, conductor.stats)


def _serve_metrics(conductor: Conductor, port: int) -> None:
    """``--metrics-port``: imported only then, so a conductor without it loads no metrics code."""
    try:
        extras.require("serve", "flowkit-conductor --metrics-port")
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    from prometheus_client import CollectorRegistry

    from flowkit.serve.metrics import ConductorMetrics, serve

    registry = CollectorRegistry()
    metrics = ConductorMetrics(conductor, registry)
    try:
        server = serve(port, registry, metrics.health)
    except OSError as exc:
        raise click.ClickException(f"--metrics-port {port}: {exc}") from exc
    LOG.info("conductor %r: metrics on http://127.0.0.1:%d/metrics", conductor.name, server.server_port)


def _stop(conductor: Conductor, thread: threading.Thread, signals: _Signals, grace: float) -> None:
    """Stop the loop; wait for it as long as its jobs' atoms may take (``grace``), or a second signal."""
    LOG.info("conductor %r: %s, stopping", conductor.name, signals.last)
    running = conductor.running_jobs
    conductor.stop()
    signals.wake.set()
    deadline = time.monotonic() + (grace if running else 0.0) + STOP_MARGIN
    while thread.is_alive() and time.monotonic() < deadline and signals.count < 2:
        thread.join(0.1)
    if not thread.is_alive():
        return
    if signals.count >= 2:
        LOG.warning(
            "conductor %r: %s again, exiting now; claims are left to the board", conductor.name, signals.last
        )
    else:
        LOG.warning(
            "conductor %r: did not stop within %.0f s (a service not answering?); exiting, claims are left "
            "to the board",
            conductor.name,
            (grace if running else 0.0) + STOP_MARGIN,
        )
    _exit_now(1)


def _exit_now(code: int) -> None:
    """Exit without waiting for threads stuck in a call that does not answer (they are abandoned)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``flowkit-conductor = conductor.cli:main``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="flowkit-conductor")
