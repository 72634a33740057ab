"""What the commands share: turning a factory path into a flow, with click's error reporting."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from flowkit.exceptions import FlowkitError
from flowkit.factory import build_flow
from flowkit.flow import Flow

FACTORY_HELP = (
    "FACTORY is 'package.module:attribute': a callable returning a flow, or a flow. "
    "The current directory is importable."
)


_Command = TypeVar("_Command", bound=Callable[..., Any])


def persistence_option(flows: str = "the flows", required: bool = True) -> Callable[[_Command], _Command]:
    """``--persistence URL`` (or ``FLOWKIT_PERSISTENCE``) as every command that reads flows takes it, the
    conductor daemon's included; ``flows`` names whose flows they are in its help. Not ``required`` where
    a command can do without it (the job commands ask for it only where they read or save a flow)."""
    return click.option(
        "--persistence",
        "persistence_url",
        envvar="FLOWKIT_PERSISTENCE",
        required=required,
        metavar="URL",
        help=f"Persistence URL of {flows} [env FLOWKIT_PERSISTENCE]",
    )


PERSISTENCE = persistence_option()
"""``--persistence URL`` of the flows, as most commands take it."""

OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or JSON (one array) for scripts",
)
"""``-o table|json`` on every listing."""


class FlowError(click.ClickException):
    """The flow cannot be used as given (bad factory path, compile error): exit status 2."""

    exit_code = 2


def load_flow(path: str) -> Flow:
    """The flow built by the factory at ``path``; a click usage error (exit 2) naming it otherwise."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: modules beside the caller are importable
    try:
        return build_flow(path)
    except FlowkitError as exc:
        raise click.BadParameter(str(exc), param_hint="FACTORY") from exc
