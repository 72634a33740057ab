"""``flowkit db upgrade URL`` and ``flowkit show URL [UUID]``: the persistence database from a shell.

``show`` is read-only: it never creates or migrates anything (a SQLite path that does not exist is
an error, not a new empty database), and it does not retry a database that is down; it says so.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from flowkit.exceptions import FlowkitError, NotFound
from flowkit.persistence.backends import Backend, fetch
from flowkit.persistence.backoff import NO_RETRY
from flowkit.persistence.models import AtomDetail, FlowDetail, LogBook

URL_HELP = "URL is a persistence URL: sqlite:///path.db, postgresql://user@host/db or memory://."


def _backend(url: str, read_only: bool) -> Backend:
    """``read_only``: the database must exist already, and a failure is reported at once."""
    if read_only and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        if str(path) not in ("", ":memory:") and not path.exists():
            raise click.ClickException(f"{url}: no such SQLite file")
    try:
        return fetch(url, backoff=NO_RETRY) if read_only else fetch(url)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("db")
def db() -> None:
    """Manage the persistence database."""


@db.command("upgrade", epilog=URL_HELP)
@click.argument("url")
def upgrade(url: str) -> None:
    """Create or migrate flowkit's tables in the database at URL (safe to run again)."""
    from flowkit.persistence import migrations

    backend = _backend(url, read_only=False)
    try:
        with backend.get_connection() as conn:
            conn.upgrade()
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        backend.close()
    click.echo(f"{backend.display_url}: schema at revision {migrations.head()}")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(ad: AtomDetail) -> str:
    if ad.duration is not None:
        return f"{ad.duration:.3f}s"
    return "running" if ad.started_at is not None else "-"


def _failure_text(ad: AtomDetail) -> str:
    parts = []
    if ad.failure is not None:
        parts.append(ad.failure.summary)
    if ad.revert_failure is not None:
        parts.append(f"revert: {ad.revert_failure.summary}")
    return "; ".join(parts)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]


def _show_flow(fd: FlowDetail) -> None:
    click.echo(f"flow {fd.name!r} {fd.uuid}  {fd.state}  (logbook {fd.parent_uuid})")
    click.echo(f"  created {_when(fd.created_at)}, updated {_when(fd.updated_at)}")
    factory = fd.meta.get("factory")
    if isinstance(factory, dict):
        click.echo(f"  factory {factory.get('name')}")
    for name, failure in fd.failures.items():
        click.echo(f"  reverting because {name!r} failed: {failure.summary}")
    rows = [["ATOM", "KIND", "STATE", "INTENTION", "ATTEMPTS", "DURATION", "FAILURE"]]
    for ad in fd:
        rows.append(
            [
                ad.name,
                ad.kind,
                ad.state.value,
                ad.intention.value,
                str(ad.attempts),
                _duration(ad),
                _failure_text(ad),
            ]
        )
    for line in _table(rows):
        click.echo("  " + line.rstrip())


def _show_book(book: LogBook, atoms: bool) -> None:
    click.echo(f"logbook {book.name!r} {book.uuid}  ({len(book)} flows, created {_when(book.created_at)})")
    for fd in book:
        if atoms:
            _show_flow(fd)
        else:
            done = sum(1 for ad in fd if ad.state.value in ("SUCCESS", "IGNORE"))
            click.echo(f"  flow {fd.name!r} {fd.uuid}  {fd.state}  {done}/{len(fd)} atoms done")


@click.command("show", epilog=URL_HELP)
@click.argument("url")
@click.argument("uuid", required=False)
def show(url: str, uuid: str | None) -> None:
    """Show what the database at URL holds (read-only).

    Without UUID: every logbook and its flows. With a logbook's or a flow detail's UUID: each flow's
    atoms with their state, intention, attempts, the duration of their last execute or revert, and
    their failure.
    """
    backend = _backend(url, read_only=True)
    try:
        with backend.get_connection() as conn:
            conn.validate()
            if uuid is None:
                skipped: list[str] = []
                books = conn.get_logbooks(on_corrupt=lambda u, e: skipped.append(f"logbook {u} skipped: {e}"))
                if not books and not skipped:
                    click.echo("no logbooks")
                for book in books:
                    _show_book(book, atoms=False)
                for line in skipped:  # the others are listed; these are named, with why
                    click.echo(line, err=True)
                return
            try:
                _show_flow(conn.get_flow_detail(uuid))
            except NotFound:
                _show_book(conn.get_logbook(uuid), atoms=True)
    except NotFound:
        raise click.ClickException(f"no logbook or flow detail {uuid!r} in {backend.display_url}") from None
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        backend.close()


COMMANDS: tuple[click.Command, ...] = (db, show)
"""The commands this module adds to ``flowkit``."""
