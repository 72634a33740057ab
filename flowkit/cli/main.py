"""The ``flowkit`` command: a click group; each command lives in its own module and is added here."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

import flowkit
from flowkit.cli._interrupt import EXIT_CODE
from flowkit.cli.cancel import cancel_flow, cancel_job
from flowkit.cli.db import db, show
from flowkit.cli.events import events
from flowkit.cli.flows import flows
from flowkit.cli.graph import graph
from flowkit.cli.jobs import jobs
from flowkit.cli.operator import fleet, resume, retry
from flowkit.cli.run import run
from flowkit.cli.serve import serve

COMMANDS: tuple[click.Command, ...] = (run, graph, db, show, jobs, flows, events, fleet, serve)
jobs.add_command(cancel_job)
flows.add_command(cancel_flow)
flows.add_command(retry)
flows.add_command(resume)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(flowkit.__version__, prog_name="flowkit")
def cli() -> None:
    """Run and inspect flowkit flows."""


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``flowkit = flowkit.cli.main:main``).

    Ctrl-C exits 130 with one line, wherever it comes (``run`` handles it during the run itself);
    click alone would print "Aborted!" and exit 1.
    """
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="flowkit", standalone_mode=False
        )
    except click.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_CODE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
