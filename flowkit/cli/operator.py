"""Operator verbs from a shell: ``flowkit jobs requeue|trash UUID``, ``flowkit flows retry|resume UUID``
and ``flowkit fleet``. UUIDs may be given by a unique prefix; listings take ``-o json``.

They share ``--board``/``--persistence``/``--board-name`` (and the ``FLOWKIT_*`` variables) with
``flowkit jobs``, and fail fast like it when the board or the database does not answer.
"""

from __future__ import annotations

import json
import time

import click

from flowkit.cli._common import OUTPUT
from flowkit.cli.jobs import _board_options, _connected, jobs, table
from flowkit.jobboard import Job


def _posted(verb: str, job: Job) -> None:
    click.echo(f"{verb}: job {job.name!r} {job.uuid} posted for flow {job.flow_uuid}")


@jobs.command("requeue")
@click.argument("uuid")
@_board_options
def requeue(uuid: str, board_url: str, persistence_url: str | None, board_name: str) -> None:
    """Offer a set-aside job (UUID or a unique prefix) again, its attempts reset."""
    with _connected(board_url, board_name, persistence_url) as board:
        job = board.requeue(board.find_job(uuid))
    click.echo(f"requeued job {job.name!r} {job.uuid}")


@jobs.command("trash")
@click.argument("uuid")
@click.option("--reason", help="Kept with the job")
@_board_options
def trash(
    uuid: str, reason: str | None, board_url: str, persistence_url: str | None, board_name: str
) -> None:
    """Take an unclaimed or set-aside job (UUID or prefix) off the board without running it."""
    with _connected(board_url, board_name, persistence_url) as board:
        job = board.find_job(uuid)
        board.trash_job(job, reason)
    click.echo(f"trashed job {job.name!r} {job.uuid}")


@click.command("retry")
@click.argument("uuid")
@_board_options
def retry(uuid: str, board_url: str, persistence_url: str | None, board_name: str) -> None:
    """Run a REVERTED or FAILED flow (flow detail UUID or prefix) again from its start, as a new job."""
    if persistence_url is None:
        raise click.UsageError("retry needs --persistence URL (or FLOWKIT_PERSISTENCE)")
    with _connected(board_url, board_name, persistence_url) as board:
        _posted("retry", board.retry_flow(uuid))


@click.command("resume")
@click.argument("uuid")
@_board_options
def resume(uuid: str, board_url: str, persistence_url: str | None, board_name: str) -> None:
    """Post a job resuming a SUSPENDED flow (flow detail UUID or prefix)."""
    if persistence_url is None:
        raise click.UsageError("resume needs --persistence URL (or FLOWKIT_PERSISTENCE)")
    with _connected(board_url, board_name, persistence_url) as board:
        _posted("resume", board.resume_flow(uuid))


def _ago(when: float) -> str:
    seconds = max(0.0, time.time() - when)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


@click.command("fleet")
@click.option(
    "--transport",
    envvar="FLOWKIT_TRANSPORT",
    metavar="URL",
    help="Also list the workers on this broker (amqp://...) [env FLOWKIT_TRANSPORT]",
)
@click.option(
    "--exchange",
    default="flowkit",
    show_default=True,
    envvar="FLOWKIT_EXCHANGE",
    help="[env FLOWKIT_EXCHANGE]",
)
@OUTPUT
@_board_options
def fleet(
    transport: str | None,
    exchange: str,
    output: str,
    board_url: str,
    persistence_url: str | None,
    board_name: str,
) -> None:
    """The conductors on the board: alive, gone (missed 3 heartbeats) or stopped, and what they run;
    with --transport, the workers that answer on the broker too."""
    from flowkit.serve.fleet import fleet as whole_fleet

    with _connected(board_url, board_name, persistence_url) as board:
        members = whole_fleet(board, transport, exchange)
    if output == "json":
        records = [{**m.to_record(), "status": m.status().value} for m in members]
        click.echo(json.dumps(records, indent=2))
        return
    if not members:
        click.echo("no conductor has announced itself on this board")
        return
    rows = [["NAME", "KIND", "STATUS", "HOST", "PID", "STARTED", "HEARTBEAT", "RUNNING"]]
    for m in members:
        running = ", ".join(r[:8] for r in m.running) or "-"
        rows.append(
            [
                m.name,
                m.kind,
                m.status().value,
                m.host,
                str(m.pid),
                _ago(m.started),
                _ago(m.heartbeat),
                running,
            ]
        )
    click.echo(table(rows))
