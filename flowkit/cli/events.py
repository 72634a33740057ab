"""``flowkit events send NAME [--payload JSON]`` and ``flowkit events prune``: events for durable waits.

An event is saved in persistence (``--persistence``), where every flow waiting for it finds it, now or
later; with ``--board`` the jobs parked on it are made claimable at once (``board.send_event``).
"""

from __future__ import annotations

import click

from flowkit.cli._common import PERSISTENCE
from flowkit.cli.jobs import _connected, _json
from flowkit.exceptions import FlowkitError
from flowkit.persistence import events as event_log
from flowkit.persistence.shared import backend_for, ensure_schema


@click.group("events")
def events() -> None:
    """Send events to flows waiting for them (flowkit.WaitForEvent)."""


@events.command("send")
@click.argument("name")
@click.option("--payload", metavar="JSON", help="The event's payload (JSON): the waiting atom's result")
@PERSISTENCE
@click.option(
    "--board", "board_url", envvar="FLOWKIT_BOARD", metavar="URL", help="Job board URL [env FLOWKIT_BOARD]"
)
@click.option("--board-name", default="flowkit", show_default=True, envvar="FLOWKIT_BOARD_NAME")
def send(
    name: str, payload: str | None, persistence_url: str, board_url: str | None, board_name: str
) -> None:
    """Send the event NAME: every flow waiting for it (now or later) takes PAYLOAD as its result."""
    value = _json(payload, "--payload")
    if board_url is not None:
        with _connected(board_url, board_name, persistence_url) as board:
            board.send_event(name, value)
        click.echo(f"sent event {name!r} (saved, and the jobs waiting for it woken on {board_name!r})")
        return
    try:
        event_log.send_event(ensure_schema(backend_for(persistence_url)), name, value)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"sent event {name!r} (saved; give --board to wake jobs parked on it now)")


@events.command("prune")
@click.option("--older-than", type=click.FloatRange(min=0), required=True, metavar="SECONDS")
@PERSISTENCE
def prune(older_than: float, persistence_url: str) -> None:
    """Delete the events sent more than SECONDS ago (events are kept until pruned)."""
    try:
        gone = event_log.prune_events(ensure_schema(backend_for(persistence_url)), older_than)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deleted {gone} event(s)")
