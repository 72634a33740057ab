"""``flowkit jobs post|list|show``: the job board from a shell, for people.

Every command takes ``--board URL`` and ``--persistence URL`` (or ``FLOWKIT_BOARD`` and
``FLOWKIT_PERSISTENCE``, the variables the conductor reads), so an operator sets them once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from flowkit.cli._common import OUTPUT, persistence_option
from flowkit.exceptions import FlowkitError
from flowkit.factory import allow_list
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.jobboard.listing import JobEntry


def _board_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--board-name",
        default="flowkit",
        show_default=True,
        envvar="FLOWKIT_BOARD_NAME",
        help="The board's name (SQL boards keep one set of jobs per name)",
    )(fn)
    fn = persistence_option("the jobs' flows", required=False)(fn)
    return click.option(
        "--board",
        "board_url",
        envvar="FLOWKIT_BOARD",
        required=True,
        metavar="URL",
        help="Job board URL [env FLOWKIT_BOARD]",
    )(fn)


@contextmanager
def _connected(board_url: str, board_name: str, persistence_url: str | None) -> Iterator[JobBoard]:
    """The board, connected; flowkit errors become click errors (exit 1) that say what went wrong.

    Fail fast: the board and persistence get :data:`CONNECT_TIMEOUT` seconds to answer (quick single
    attempts, the clients' own retry warnings silenced), then one line says which did not.
    """
    from conductor import startup

    try:
        board = boards.fetch(board_name, board_url, persistence=persistence_url)
        startup.check(board, board_url, persistence_url, _connect_timeout(), threading.Event())
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield board
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        board.close()


CONNECT_TIMEOUT = 5.0
"""Seconds an admin command gives the board and persistence to answer (``FLOWKIT_CONNECT_TIMEOUT``)."""


def _connect_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("FLOWKIT_CONNECT_TIMEOUT", CONNECT_TIMEOUT)))
    except ValueError:
        raise click.UsageError("FLOWKIT_CONNECT_TIMEOUT must be a number of seconds") from None


def _json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None


def _age(created_on: float) -> str:
    seconds = max(0.0, time.time() - created_on)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@click.group("jobs")
def jobs() -> None:
    """Post, list and inspect jobs on a job board."""


@jobs.command("post")
@click.argument("factory")
@click.option("--store", metavar="JSON", help="The flow's inputs, a JSON object")
@click.option("--kwargs", "factory_kwargs", metavar="JSON", help="Keyword arguments for the factory")
@click.option("--name", help="The job's name (default: the factory's)")
@click.option("--priority", type=click.IntRange(-2, 2), default=0, show_default=True)
@click.option(
    "--allow",
    multiple=True,
    metavar="MODULE_PREFIX",
    envvar="FLOWKIT_ALLOW",
    help="Refuse a FACTORY not defined under this module prefix (repeat, or separate with commas), "
    "as a conductor with the same --allow would [env FLOWKIT_ALLOW]",
)
@_board_options
def post(
    factory: str,
    store: str | None,
    factory_kwargs: str | None,
    name: str | None,
    priority: int,
    allow: tuple[str, ...],
    board_url: str,
    persistence_url: str | None,
    board_name: str,
) -> None:
    """Post a job that runs the flow FACTORY ('package.module:function') builds.

    Nothing runs here: FACTORY is checked (and, under --allow, imported and looked up, never called)
    and recorded for a conductor. A refused job saves nothing.
    """
    store_value, kwargs_value = _json(store, "--store"), _json(factory_kwargs, "--kwargs")
    for value, what in ((store_value, "--store"), (kwargs_value, "--kwargs")):
        if value is not None and not isinstance(value, dict):
            raise click.BadParameter("must be a JSON object", param_hint=what)
    if persistence_url is None:
        raise click.UsageError("posting a flow needs --persistence URL (or FLOWKIT_PERSISTENCE)")
    prefixes = [p.strip() for value in allow for p in value.split(",") if p.strip()] or None
    with _connected(board_url, board_name, persistence_url) as board:
        board.allow = allow_list(prefixes)
        job = board.post_flow(
            factory, store=store_value, factory_kwargs=kwargs_value, name=name, priority=priority
        )
    click.echo(f"posted job {job.name!r} {job.uuid}")


def _reason(job: Job) -> str:
    return f"cancel asked: {job.cancel_reason}" if job.cancel_reason else job.last_reason or ""


def _entry_record(entry: JobEntry) -> dict[str, Any]:
    job = entry.job
    return {
        "uuid": job.uuid,
        "name": job.name,
        "state": entry.state.value,
        "owner": entry.owner,
        "priority": job.priority,
        "attempts": job.attempts,
        "last_reason": job.last_reason,
        "created_on": job.created_on,
        "updated_on": entry.updated_on,
        "book_uuid": job.book_uuid,
        "flow_uuid": job.flow_uuid,
    }


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last one is left ragged."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    return "\n".join(
        ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1]).rstrip()
        for r in rows
    )


_table = table


@jobs.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the jobs set aside and the jobs cancelled")
@click.option(
    "--history", is_flag=True, help="Also the jobs consumed or trashed (kept for the board's retention)"
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in JobState]),
    help="Only these states",
)
@click.option("--owner", help="Only the jobs this conductor holds (or consumed)")
@OUTPUT
@_board_options
def list_jobs(
    show_all: bool,
    history: bool,
    states: tuple[str, ...],
    owner: str | None,
    output: str,
    board_url: str,
    persistence_url: str | None,
    board_name: str,
) -> None:
    """The jobs on the board: state, owner, age, attempts and the last reason given."""
    with _connected(board_url, board_name, persistence_url) as board:
        entries = board.listing(finished=history or bool(states))
    shown = set(states) if states else {JobState.UNCLAIMED, JobState.CLAIMED, JobState.WAITING}
    if not states and show_all:
        shown |= {JobState.SET_ASIDE, JobState.CANCELLED}
    if not states and history:
        shown |= {JobState.COMPLETE, JobState.TRASHED, JobState.SET_ASIDE, JobState.CANCELLED}
    entries = [e for e in entries if e.state in shown and (owner is None or e.owner == owner)]
    if output == "json":
        click.echo(json.dumps([_entry_record(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo("no jobs")
        return
    rows = [["UUID", "NAME", "STATE", "OWNER", "AGE", "ATTEMPTS", "REASON"]]
    for e in entries:
        job = e.job
        row = [job.uuid, job.name, e.state, e.owner or "-", _age(job.created_on), str(job.attempts)]
        rows.append([*row, _reason(job)])
    click.echo(table(rows))


@jobs.command("show")
@click.argument("uuid")
@_board_options
def show(uuid: str, board_url: str, persistence_url: str | None, board_name: str) -> None:
    """One job, and the states of its flow's atoms from persistence."""
    with _connected(board_url, board_name, persistence_url) as board:
        job = board.find_job(uuid)
        lines = [
            ("job", f"{job.name} {job.uuid}"),
            ("state", str(job.state)),
            ("owner", board.find_owner(job) or "-"),
            ("posted", f"{_age(job.created_on)} ago"),
            ("priority", str(job.priority)),
            ("attempts", str(job.attempts)),
            ("reason", job.last_reason or "-"),
            ("cancel", job.cancel_reason or "-"),
            ("logbook", job.book_uuid or "-"),
            ("flow detail", job.flow_uuid or "-"),
            ("details", json.dumps(job.details, sort_keys=True)),
        ]
        click.echo("\n".join(f"{k + ':':13}{v}" for k, v in lines))
        if persistence_url is None or job.book_uuid is None:
            return
        book = board.load_book(job)
        if book is None:  # not reached: both checked above; says so to the type checker
            return
        details = [book.find(job.flow_uuid)] if job.flow_uuid else list(book)
        for fd in details:
            if fd is None:
                click.echo(f"flow detail {job.flow_uuid} is not in logbook {job.book_uuid}")
                continue
            factory = fd.meta.get("factory", {}).get("name", "?")
            click.echo(f"\nflow {fd.name!r} ({factory}): {fd.state}")
            atoms = list(fd)
            if not atoms:
                click.echo("no atom has started yet")
                continue
            rows = [["ATOM", "STATE", "FAILURE"]]
            rows += [[ad.name, str(ad.state), ad.failure.summary if ad.failure else ""] for ad in atoms]
            click.echo(_table(rows))
