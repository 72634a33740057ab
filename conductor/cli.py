"""``flowkit-conductor``: the daemon that runs jobs from a board until SIGTERM or SIGINT.

On either signal it stops claiming, suspends the flows it runs at their next safe point, abandons
their jobs (not counted against them) so another conductor resumes them, and exits 0; atoms still
running after ``--grace`` seconds are left to the board, which releases the claims as the process
ends.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import click

from conductor.loop import Conductor
from flowkit.exceptions import FlowkitError
from flowkit.jobboard import backends as boards


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
@click.option(
    "--persistence",
    "persistence_url",
    envvar="FLOWKIT_PERSISTENCE",
    required=True,
    metavar="URL",
    help="Persistence URL of the jobs' flows [env FLOWKIT_PERSISTENCE]",
)
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
@click.option("--log-level", default="INFO", show_default=True)
def cli(
    board_url: str,
    persistence_url: str,
    name: str,
    board_name: str,
    engine: str,
    max_jobs: int,
    allow: tuple[str, ...],
    grace: float,
    log_level: str,
) -> None:
    """Claim jobs from a flowkit job board and run their flows, until SIGTERM or SIGINT."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks at start-up are not news
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: factories beside the caller import
    board = boards.fetch(board_name, board_url, persistence=persistence_url)
    try:
        board.connect()
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    conductor = Conductor(
        name, board, persistence_url, engine=engine, max_jobs=max_jobs, allow=_prefixes(allow), grace=grace
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("conductor").info("conductor %r: %s, stopping", name, signal.Signals(signum).name)
        conductor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        conductor.run()
    finally:
        board.close()
    logging.getLogger("conductor").info("conductor %r: stopped (%s)", name, conductor.stats)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``flowkit-conductor = conductor.cli:main``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="flowkit-conductor")
