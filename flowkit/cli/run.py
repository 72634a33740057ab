"""``flowkit run FACTORY``: build a flow, run it with a live per-atom table, report how it ended.

Exit status: 0 when the flow ends in SUCCESS; 1 when it ends REVERTED or FAILURE (the failures
are printed, naming their atoms); 2 when the flow cannot be run as given (bad factory path,
malformed ``--store``, a compile error, a requirement nothing provides); 130 when it was interrupted
by Ctrl-C (see :mod:`flowkit.cli._interrupt`: suspended, or reverted with ``--on-interrupt revert``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.live import Live

from flowkit import engines
from flowkit.cli._common import FACTORY_HELP, FlowError, load_flow
from flowkit.cli._display import AtomTable
from flowkit.cli._interrupt import EXIT_CODE, ON_INTERRUPT, SUSPEND, Interrupts
from flowkit.engines.engine import Engine
from flowkit.exceptions import FlowkitError
from flowkit.listeners.printing import PrintingListener
from flowkit.states import FlowState

if TYPE_CHECKING:
    # click's ParamType is generic (in its value type) only in recent releases: subscript it for the
    # type checker alone, so an older click still imports this module.
    _JsonParamType = click.ParamType[dict[str, Any]]
else:
    _JsonParamType = click.ParamType


class JsonObject(_JsonParamType):
    """A JSON object given inline (``'{"a": 1}'``) or read from a file (``@store.json``)."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        text = str(value)
        where = "--store"
        if text.startswith("@"):
            where = text[1:]
            try:
                text = Path(where).read_text(encoding="utf-8")
            except OSError as exc:
                self.fail(f"cannot read {where!r}: {exc.strerror or exc}", param, ctx)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.fail(f"{where} is not valid JSON: {exc}", param, ctx)
        if not isinstance(data, dict):
            self.fail(
                f"{where} must be a JSON object mapping names to values (like '{{\"nodes\": 3}}'), "
                f"got a {type(data).__name__}",
                param,
                ctx,
            )
        return data


def _load_engine(
    factory: str, store: dict[str, Any], engine: str | None, executor: str | None, max_workers: int | None
) -> Engine:
    if engine is None:
        engine = "parallel" if executor is not None or max_workers is not None else "serial"
    if engine == "serial" and (executor is not None or max_workers is not None):
        raise click.UsageError("--executor and --max-workers need --engine parallel")
    flow = load_flow(factory)
    try:
        eng = engines.load(flow, store=store, engine=engine, executor=executor, max_workers=max_workers)
        eng.validate()
    except FlowkitError as exc:
        raise FlowError(f"flow {flow.name!r} from {factory!r} cannot run: {exc}") from exc
    return eng


def _run(
    eng: Engine, table: AtomTable, live: bool, console: Console, interrupts: Interrupts
) -> BaseException | None:
    """Run the engine under the table (and the right display); return what ``run()`` raised."""
    with table, interrupts.installed():
        if live:
            with Live(console=console, get_renderable=table.render, refresh_per_second=10):
                return _run_engine(eng, interrupts)
        with PrintingListener(eng, stream=sys.stdout, progress=True):
            error = _run_engine(eng, interrupts)
        console.print(table.render())
        return error


def _run_engine(eng: Engine, interrupts: Interrupts) -> BaseException | None:
    error = _attempt(eng)
    if interrupts.should_revert():
        interrupts.prepare_revert()
        error = _attempt(eng)
    return error


def _attempt(eng: Engine) -> BaseException | None:
    try:
        eng.run()
    except Exception as exc:
        return exc
    return None


def _report_failures(eng: Engine) -> None:
    storage = eng.storage
    atoms = storage.get_atom_states()
    for atom_name, failure in storage.flow_failures.items():
        if atom_name in atoms:  # not the interrupt an --on-interrupt revert reverted for
            click.echo(f"error: atom {atom_name!r} failed: {failure.summary}", err=True)
    for atom_name in atoms:
        revert_failure = storage.get_revert_failure(atom_name)
        if revert_failure is not None:
            click.echo(f"error: atom {atom_name!r} could not be reverted: {revert_failure.summary}", err=True)


@click.command("run", epilog=FACTORY_HELP)
@click.argument("factory")
@click.option(
    "--store",
    type=JsonObject(),
    default="{}",
    show_default=True,
    help="The flow's inputs: a JSON object, or @FILE to read one from a file.",
)
@click.option(
    "--engine",
    type=click.Choice(["serial", "parallel"]),
    default=None,
    help="serial (default) or parallel (default with --executor/--max-workers).",
)
@click.option(
    "--executor",
    type=click.Choice(["threads", "processes"]),
    default=None,
    help="Where a parallel engine runs atoms [default: threads].",
)
@click.option("--max-workers", type=click.IntRange(min=1), default=None, help="Size of the parallel pool.")
@click.option(
    "--live/--plain",
    default=None,
    help="A live table (default on a terminal) or one line per state change (default otherwise).",
)
@click.option("--show-results", is_flag=True, help="Print the values the flow provided, as JSON.")
@click.option(
    "--on-interrupt",
    type=click.Choice(ON_INTERRUPT),
    default=SUSPEND,
    show_default=True,
    help="On Ctrl-C, once the running atoms finish: leave the flow suspended, or revert what ran. "
    "A second Ctrl-C exits at once.",
)
def run(
    factory: str,
    store: dict[str, Any],
    engine: str | None,
    executor: str | None,
    max_workers: int | None,
    live: bool | None,
    show_results: bool,
    on_interrupt: str,
) -> None:
    """Run the flow that FACTORY builds, showing each atom's state as it changes."""
    eng = _load_engine(factory, store, engine, executor, max_workers)
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a log or a pipe: no reason to squeeze the table
    table = AtomTable(eng)
    live = console.is_terminal if live is None else live
    interrupts = Interrupts(eng, on_interrupt, live=live)
    started = time.monotonic()
    error = _run(eng, table, live, console, interrupts)
    took = time.monotonic() - started
    if interrupts.interrupted:
        for line in interrupts.left_behind():
            click.echo(line, err=True)
        _report_failures(eng)
        click.echo(f"(interrupted after {took:.2f}s)", err=True)
        sys.exit(EXIT_CODE)
    state = eng.storage.get_flow_state()
    click.echo(f"flow {eng.storage.flow_name!r} ended {state.value} in {took:.2f}s")
    if state is FlowState.SUCCESS:
        if show_results:
            provided = {k: v for k, v in eng.storage.fetch_all().items() if k not in store}
            click.echo(json.dumps(provided, indent=2, sort_keys=True, default=repr))
        return
    _report_failures(eng)
    if error is not None and state not in (FlowState.REVERTED, FlowState.FAILURE):
        click.echo(f"error: the engine stopped: {type(error).__name__}: {error}", err=True)
    sys.exit(1)
