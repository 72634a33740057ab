"""Benchmark driver: flowkit, its peers and the limit in the same run, as a table with ratios and targets.

    .venv/bin/python bench/run.py [--quick] [--full] [--skip-peer | --skip-flowkit | --reuse-peer]
                                  [--suites core] [--cases linear,compile] [--repeat N]
                                  [--peers taskflow,celery,dbos] [--skip-limit]

Each suite's flowkit script and its limit script run in subprocesses of this interpreter (use the repo's
``.venv``); each peer's script in that peer's ``.bench/<peer>-venv`` (created on first use): TaskFlow
for every suite, Celery beside the worker suite, DBOS beside the persistence suite. All sides run one
after the other, never at once: the machine has two cores. Results go to ``.bench/results-<suite>.json``.
Figures are printed, never asserted: a MISSED target does not fail the run; only a side that could not
run at all does.

``--quick``: one repeat, no 10k flows / 100k compile / memory child, peer at N=100 only (about a minute).
Default: median of 3, every size a target names; the peer takes about 5 minutes.
``--full``: also the peer's 5,000-atom compile (about a minute more).
``--no-gc``: pause Python's cyclic GC inside the timed region on both sides (a diagnostic: at 10,000
tasks the collector's passes over every live object cost more per task than at 1,000, on any engine).
``--reuse-peer``: the peer figures of the last run that measured them (``.bench/peer-<suite>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _suite_core
import _suite_jobboard
import _suite_persistence
import _suite_workers
from _peer import PEERS, REPO_ROOT, TASKFLOW, run_json, run_peer
from _report import Column, report
from _suite import Peer, Preset, Results, Suite, Target, chosen_cases

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (_suite_core.SUITE, _suite_persistence.SUITE, _suite_workers.SUITE, _suite_jobboard.SUITE)
}
RESULTS_DIR = REPO_ROOT / ".bench"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    p.add_argument("--full", action="store_true", help="also the peer's slow sizes")
    p.add_argument("--skip-peer", action="store_true", help="flowkit only")
    p.add_argument("--skip-flowkit", action="store_true", help="TaskFlow only")
    p.add_argument("--reuse-peer", action="store_true", help="reuse the last measured peer figures")
    p.add_argument("--suites", default=",".join(SUITES), help="comma separated; default: %(default)s")
    p.add_argument("--cases", default=None, help="only these cases (comma separated)")
    p.add_argument("--repeat", type=int, default=None, help="median of N runs (default 3, quick 1)")
    p.add_argument("--no-gc", action="store_true", help="both sides: pause the GC while timing")
    p.add_argument("--peers", default=",".join(PEERS), help="which peers run; default: %(default)s")
    p.add_argument("--skip-limit", action="store_true", help="do not measure the limit column")
    args = p.parse_args(argv)
    unknown_peers = set(args.peers.split(",")) - set(PEERS)
    if unknown_peers:
        p.error(f"unknown peer(s) {sorted(unknown_peers)}; known: {sorted(PEERS)}")
    unknown = set(args.suites.split(",")) - set(SUITES)
    if unknown:
        p.error(f"unknown suite(s) {sorted(unknown)}; known: {sorted(SUITES)}")
    return args


def _results_path(suite: Suite) -> Path:
    return RESULTS_DIR / f"results-{suite.name}.json"


def _peer_cache(suite: Suite, key: str = TASKFLOW.key) -> Path:
    """Last successful peer measurement, kept apart so a ``--skip-peer`` run cannot erase it."""
    return RESULTS_DIR / (
        f"peer-{suite.name}.json" if key == TASKFLOW.key else f"peer-{suite.name}-{key}.json"
    )


def _previous_peer(suite: Suite, key: str = TASKFLOW.key) -> tuple[Results, str] | None:
    """The peer figures last measured for this suite, with when they were measured."""
    try:
        saved = json.loads(_peer_cache(suite, key).read_text())
    except (OSError, ValueError):
        return None
    peer = saved.get(key) or {}
    return (peer, saved.get("measured_at", "?")) if peer else None


def _save_peer(suite: Suite, key: str, results: Results, now: str) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    _peer_cache(suite, key).write_text(
        json.dumps({"measured_at": now, "argv": sys.argv[1:], key: results}, indent=2) + "\n"
    )


def _more_peers(
    suite: Suite, args: argparse.Namespace, preset: Preset, now: str, errors: dict[str, str]
) -> dict[str, Results]:
    """Celery, DBOS...: each in its own venv, reused from its cache with ``--reuse-peer``."""
    out: dict[str, Results] = {}
    wanted = set(args.peers.split(","))
    for peer in suite.more_peers:
        key = peer.env.key
        previous = _previous_peer(suite, key) if args.reuse_peer else None
        if previous:
            out[key] = previous[0]
            print(f"\n== {suite.name}: {peer.env.label} figures reused from {previous[1]}", file=sys.stderr)
            continue
        if args.skip_peer or key not in wanted or not chosen_cases(preset, peer.cases):
            continue
        results, err = _side(f"{suite.name}: {peer.env.label}", _peer_runner(peer, preset))
        if err:
            errors[key] = err
        elif results:
            out[key] = results
            _save_peer(suite, key, results, now)
    return out


def _peer_runner(peer: Peer, preset: Preset) -> Any:
    return lambda: run_peer(peer.script, peer.args(preset), env=peer.env)


def _limit(suite: Suite, args: argparse.Namespace, preset: Preset, errors: dict[str, str]) -> Results:
    limit = suite.limit
    if limit is None or args.skip_limit or not chosen_cases(preset, limit.cases):
        return {}
    results, err = _side(
        f"{suite.name}: limit ({limit.label})",
        lambda: run_json(sys.executable, limit.script, limit.args(preset)),
    )
    if err:
        errors["limit"] = err
    return results


def _side(label: str, run: Any) -> tuple[Results, str | None]:
    """Run one side; a crash is reported and kept, so the other side's figures still print."""
    print(f"\n== {label}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        results: Results = run()
    except Exception as exc:
        print(f"== {label} FAILED: {exc}", file=sys.stderr, flush=True)
        return {}, f"{type(exc).__name__}: {exc}"
    print(f"== {label} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results, None


def _only(results: Results, suite: Suite, preset: Preset) -> Results:
    """The requested cases: reused peer figures may cover more than this run measured."""
    return {c: v for c, v in results.items() if suite.asked(c, preset)}


def run_suite(suite: Suite, args: argparse.Namespace, preset: Preset) -> bool:
    """Measure both sides of one suite, save the JSON, print the tables; False if a side failed."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    ours: Results = {}
    peer: Results = {}
    errors: dict[str, str] = {}
    peer_when = now
    if not args.skip_flowkit and chosen_cases(preset, suite.flowkit_cases):
        ours, err = _side(
            f"{suite.name}: flowkit",
            lambda: run_json(sys.executable, suite.flowkit_script, suite.flowkit_args(preset)),
        )
        if err:
            errors["flowkit"] = err
    previous = _previous_peer(suite) if args.reuse_peer else None
    if previous:
        peer, peer_when = previous
        print(f"\n== {suite.name}: TaskFlow figures reused from {peer_when}", file=sys.stderr)
    elif (
        suite.peer_script
        and not args.skip_peer
        and TASKFLOW.key in args.peers.split(",")
        and chosen_cases(preset, suite.peer_cases)
    ):
        script = suite.peer_script
        peer, err = _side(f"{suite.name}: TaskFlow 6.5.0", lambda: run_peer(script, suite.peer_args(preset)))
        if err:
            errors["taskflow"] = err
        elif peer:
            _save_peer(suite, TASKFLOW.key, peer, now)
    others = _more_peers(suite, args, preset, now, errors)
    limit = _limit(suite, args, preset, errors)
    all_targets: list[Target] = suite.targets(ours, peer)
    if suite.limit_targets:
        all_targets += suite.limit_targets(ours, limit, others)
    targets = [t for t in all_targets if suite.asked(t.case, preset)]
    RESULTS_DIR.mkdir(exist_ok=True)
    _results_path(suite).write_text(
        json.dumps(
            {
                "suite": suite.name,
                "when": now,
                "taskflow_measured_at": peer_when,
                "argv": sys.argv[1:],
                "preset": asdict(preset),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "flowkit": ours,
                "taskflow": peer,
                **others,
                "limit": limit,
                "errors": errors,
                "targets": [asdict(t) | {"verdict": t.verdict} for t in targets],
            },
            indent=2,
        )
        + "\n"
    )
    columns = [
        Column(p.env.short, _only(others[p.env.key], suite, preset))
        for p in suite.more_peers
        if p.env.key in others
    ]
    limit_column = Column("limit", _only(limit, suite, preset)) if limit else None
    report(
        suite.name,
        _only(ours, suite, preset),
        _only(peer, suite, preset),
        targets,
        suite.notes,
        columns,
        limit_column,
    )
    for side, err in errors.items():
        print(f"  {side} did not run: {err}")
    print(f"  saved {_results_path(suite).relative_to(REPO_ROOT)}")
    return not errors


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    cases = tuple(c for c in args.cases.split(",") if c) if args.cases else None
    preset = Preset(quick=args.quick, full=args.full, repeat=args.repeat, cases=cases, no_gc=args.no_gc)
    ok = [run_suite(SUITES[name], args, preset) for name in args.suites.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
