"""``flowkit serve``: the web console, the REST API, ``/metrics`` and ``/healthz`` in one process.

On the embedded default nothing else needs to run: ``flowkit serve --persistence sqlite:///flows.db``
uses that file for the flows and for the board. It binds 127.0.0.1 unless told otherwise, and refuses
an address other machines can reach without ``--token``.
"""

from __future__ import annotations

import click

from flowkit import extras
from flowkit.cli._common import PERSISTENCE
from flowkit.exceptions import FlowkitError


def _prefixes(values: tuple[str, ...]) -> tuple[str, ...] | None:
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip()) or None


@click.command("serve")
@PERSISTENCE
@click.option(
    "--board",
    "board_url",
    envvar="FLOWKIT_BOARD",
    metavar="URL",
    help="Job board URL (default: the persistence database) [env FLOWKIT_BOARD]",
)
@click.option("--board-name", default="flowkit", show_default=True, envvar="FLOWKIT_BOARD_NAME")
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="FLOWKIT_HOST", help="[env FLOWKIT_HOST]"
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8642,
    show_default=True,
    envvar="FLOWKIT_PORT",
    help="[env FLOWKIT_PORT]",
)
@click.option(
    "--token",
    envvar="FLOWKIT_TOKEN",
    help="Every /api request must send 'Authorization: Bearer TOKEN'; needed to bind a non-loopback host "
    "[env FLOWKIT_TOKEN]",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="MODULE_PREFIX",
    envvar="FLOWKIT_ALLOW",
    help="Refuse to post a job whose factory is not under this prefix, as conductors with the same "
    "--allow would [env FLOWKIT_ALLOW]",
)
@click.option(
    "--transport",
    envvar="FLOWKIT_TRANSPORT",
    metavar="URL",
    help="A broker (amqp://...): the fleet lists its workers too [env FLOWKIT_TRANSPORT]",
)
@click.option(
    "--exchange",
    default="flowkit",
    show_default=True,
    envvar="FLOWKIT_EXCHANGE",
    help="[env FLOWKIT_EXCHANGE]",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    envvar="FLOWKIT_LOG_LEVEL",
)
def serve(
    persistence_url: str,
    board_url: str | None,
    board_name: str,
    host: str,
    port: int,
    token: str | None,
    allow: tuple[str, ...],
    transport: str | None,
    exchange: str,
    log_level: str,
) -> None:
    """Serve the web console, the REST API (/api/v1, OpenAPI at /openapi.json), /metrics and /healthz."""
    try:
        extras.require("serve", "flowkit serve")
        from flowkit.serve.settings import ServeSettings

        settings = ServeSettings(
            persistence_url,
            board_url,
            board_name,
            token or None,
            host,
            port,
            allow=_prefixes(allow),
            transport=transport or None,
            exchange=exchange,
        )
    except FlowkitError as exc:
        raise click.UsageError(str(exc)) from exc
    from flowkit.serve.app import serve_forever

    shown = f"[{host}]" if ":" in host else host
    click.echo(f"flowkit serve: http://{shown}:{port}/ (API /api/v1, /metrics, /healthz)", err=True)
    serve_forever(settings, log_level.lower())
