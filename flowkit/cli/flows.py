"""``flowkit flows list|show``: every flow in the persistence database, filtered and paged, and one
flow by (a unique prefix of) its uuid, with its atoms' states, execute and revert times and failures.

Read-only, like ``flowkit show``: the database must exist, and one that is down is reported at once.
``-o json`` prints what a script can parse (one object; a listing carries ``next_cursor``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from flowkit.cli._common import OUTPUT, PERSISTENCE
from flowkit.cli.db import _backend, _table, _when
from flowkit.exceptions import FlowkitError
from flowkit.failure import Failure
from flowkit.persistence import queries
from flowkit.persistence.models import AtomDetail, FlowDetail
from flowkit.persistence.queries import FlowFilter, FlowSummary
from flowkit.states import FlowState

__all__ = ["flows"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str | None) -> datetime | None:
    """``2h``/``30m``/``7d`` ago, or an ISO 8601 moment (UTC when it names no zone)."""
    if text is None:
        return None
    ago = _AGO.match(text.strip())
    if ago:
        return datetime.now(UTC) - timedelta(seconds=float(ago.group(1)) * _UNITS[ago.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a time ago (30m, 2h, 7d) nor an ISO 8601 moment", param_hint="--since"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@click.group("flows")
def flows() -> None:
    """List and inspect the flows in the persistence database."""


def _summary_json(s: FlowSummary) -> dict[str, Any]:
    return {
        "uuid": s.uuid,
        "name": s.name,
        "state": s.state,
        "logbook_uuid": s.logbook_uuid,
        "logbook_name": s.logbook_name,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
    }


@flows.command("list")
@click.option("--state", type=click.Choice(list(FlowState.__members__)), help="Only flows in this state")
@click.option("--name", help="Only flows whose name contains this (any case)")
@click.option("--since", metavar="WHEN", help="Only flows created since: 30m, 2h, 7d, or an ISO 8601 moment")
@click.option("--limit", type=click.IntRange(1, queries.MAX_LIMIT), default=50, show_default=True)
@click.option("--cursor", metavar="CURSOR", help="Continue after an earlier page (its next_cursor)")
@OUTPUT
@PERSISTENCE
def list_flows(
    state: str | None,
    name: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    output: str,
    persistence_url: str,
) -> None:
    """Flows of every logbook, newest first, one page at a time."""
    flt = FlowFilter(state, name, _since(since))
    backend = _backend(persistence_url, read_only=True)
    try:
        with backend.get_connection() as conn:
            conn.validate()
        page = queries.list_flows(backend, flt, limit=limit, cursor=cursor)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        backend.close()
    if output == "json":
        body = {"flows": [_summary_json(s) for s in page.flows], "next_cursor": page.next_cursor}
        click.echo(json.dumps(body, indent=2))
        return
    if not page.flows:
        click.echo("no flows")
        return
    rows = [["UUID", "STATE", "CREATED", "UPDATED", "NAME"]]
    rows += [[s.uuid, s.state, _when(s.created_at), _when(s.updated_at), s.name] for s in page.flows]
    for line in _table(rows):
        click.echo(line.rstrip())
    if page.next_cursor is not None:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _failure_json(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "exception_str": f.exception_str,
        "exc_type_names": list(f.exc_type_names),
        "traceback_str": f.traceback_str,
    }


def _atom_json(ad: AtomDetail) -> dict[str, Any]:
    return {
        "name": ad.name,
        "kind": ad.kind,
        "state": ad.state.value,
        "intention": ad.intention.value,
        "attempts": ad.attempts,
        "duration": ad.duration,
        "revert_duration": ad.revert_duration,
        "result": ad.results,
        "failure": _failure_json(ad.failure),
        "revert_failure": _failure_json(ad.revert_failure),
    }


def _flow_json(fd: FlowDetail) -> dict[str, Any]:
    factory = fd.meta.get("factory")
    return {
        "uuid": fd.uuid,
        "name": fd.name,
        "state": (fd.state or FlowState.PENDING).value,
        "logbook_uuid": fd.parent_uuid,
        "created_at": fd.created_at.isoformat(),
        "updated_at": fd.updated_at.isoformat(),
        "factory": factory.get("name") if isinstance(factory, dict) else None,
        "failures": {n: _failure_json(f) for n, f in fd.failures.items()},
        "atoms": [_atom_json(ad) for ad in sorted(fd, key=lambda ad: ad.position or 0)],
    }


def _show(fd: FlowDetail) -> None:
    click.echo(
        f"flow {fd.name!r} {fd.uuid}  {(fd.state or FlowState.PENDING).value}  (logbook {fd.parent_uuid})"
    )
    click.echo(f"  created {_when(fd.created_at)}, updated {_when(fd.updated_at)}")
    factory = fd.meta.get("factory")
    if isinstance(factory, dict):
        click.echo(f"  factory {factory.get('name')}")
    rows = [["ATOM", "KIND", "STATE", "ATTEMPTS", "EXECUTE", "REVERT", "FAILURE"]]
    for ad in sorted(fd, key=lambda ad: ad.position or 0):
        failure = "; ".join(
            text
            for text in (
                ad.failure.summary if ad.failure else "",
                f"revert: {ad.revert_failure.summary}" if ad.revert_failure else "",
            )
            if text
        )
        rows.append(
            [
                ad.name,
                ad.kind,
                ad.state.value,
                str(ad.attempts),
                _seconds(ad.duration),
                _seconds(ad.revert_duration),
                failure,
            ]
        )
    for line in _table(rows):
        click.echo("  " + line.rstrip())
    for name, f in fd.failures.items():
        click.echo(f"\n{name} failed: {f.summary}\n{f.traceback_str.rstrip()}")


@flows.command("show")
@click.argument("uuid")
@OUTPUT
@PERSISTENCE
def show_flow(uuid: str, output: str, persistence_url: str) -> None:
    """One flow, by its UUID or a unique start of it: atoms with states, times and failures."""
    backend = _backend(persistence_url, read_only=True)
    try:
        with backend.get_connection() as conn:
            conn.validate()
        fd = queries.find_flow(backend, uuid)
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        backend.close()
    if output == "json":
        click.echo(json.dumps(_flow_json(fd), indent=2, default=str))
    else:
        _show(fd)
