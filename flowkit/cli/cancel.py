"""``flowkit jobs cancel UUID`` and ``flowkit flows cancel UUID``: ask for a job's (a flow's) cancel.

The command only saves the request on the board and returns: the conductor that holds the job hears
of it within about a second, reverts the flow and ends the job CANCELLED; a job nobody holds is
cancelled by the next conductor that claims it. ``--wait`` waits for the job to end.

A flow is cancelled through the job that runs it: a flow run by an engine outside a conductor cannot
be reached from a shell (its process cancels it with ``engine.cancel()``).
"""

from __future__ import annotations

import time

import click

from flowkit.cli.jobs import _board_options, _connected
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard.cancels import find_open_job

DEFAULT_REASON = "cancelled by an operator (flowkit jobs cancel)"


def _reason_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--reason", default=DEFAULT_REASON, show_default=True, help="Why: kept with the job and its flow"
    )(fn)


def _wait_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--wait",
        "wait_s",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help="Wait up to SECONDS for the job to end (exit 1 if it has not)",
    )(fn)


def _report(board: JobBoard, job: Job, wait_s: float | None) -> None:
    state = board.state_of(job)
    click.echo(f"cancel asked for job {job.name!r} {job.uuid} ({state.value}): {job.cancel_reason}")
    if wait_s is None:
        return
    deadline = time.monotonic() + wait_s
    while state in (JobState.UNCLAIMED, JobState.CLAIMED) and time.monotonic() < deadline:
        time.sleep(0.1)
        state = board.state_of(job)
    click.echo(f"job {job.uuid} is {state.value}")
    if state in (JobState.UNCLAIMED, JobState.CLAIMED):
        raise click.ClickException(f"job {job.uuid} has not ended within {wait_s:g}s")


@click.command("cancel")
@click.argument("uuid")
@_reason_option
@_wait_option
@_board_options
def cancel_job(
    uuid: str, reason: str, wait_s: float | None, board_url: str, persistence_url: str | None, board_name: str
) -> None:
    """Cancel the job UUID (or a unique start of it): its flow is reverted, the job ends CANCELLED."""
    with _connected(board_url, board_name, persistence_url) as board:
        job = board.cancel(find_open_job(board, uuid), reason)
        _report(board, job, wait_s)


@click.command("cancel")
@click.argument("uuid")
@_reason_option
@_wait_option
@_board_options
def cancel_flow(
    uuid: str, reason: str, wait_s: float | None, board_url: str, persistence_url: str | None, board_name: str
) -> None:
    """Cancel the flow detail UUID (or a unique start of it) through the job on the board that runs it."""
    with _connected(board_url, board_name, persistence_url) as board:
        job = board.cancel_flow(uuid, reason)
        _report(board, job, wait_s)
