"""Soak: N jobs, 3 real conductors, a random one SIGKILLed every 1.5-3 s and replaced; count the damage.

    .venv/bin/python bench/faults_soak.py --board zookeeper      # or --board sql; --jobs 200 ...

Each job is 3-5 atoms of 20-100 ms that log their start and end (pid, time) to one event log. Once the
board is empty (or the time is up) it prints jobs posted / consumed / lost / completed twice, atoms run
more than once and how many of those a kill explains (the killed process had started the atom and not
ended it), the unexplained ones, and the kills; see ``tests/fault_ledger.py`` for the exact rules.
Exit status 1 when anything was lost, completed twice, left unfinished, run by two conductors at once
or run twice without a kill to explain it; 2 when the run itself failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from _faults import BOARDS, Setting, run_script, sigterm_as_interrupt

from tests.fault_soak import SoakPlan, soak


def _pair(text: str, kind: type) -> tuple:
    low, _, high = text.partition("-")
    return kind(low), kind(high or low)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--board", choices=BOARDS, required=True)
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--conductors", type=int, default=3)
    p.add_argument("--atoms", default="3-5", help="atoms per job, LOW-HIGH")
    p.add_argument("--atom-ms", default="20-100", help="atom duration in ms, LOW-HIGH")
    p.add_argument("--kill-every", default="1.5-3", help="seconds between SIGKILLs, LOW-HIGH")
    p.add_argument(
        "--min-age", type=float, default=1.0, help="kill only conductors ready for this many seconds"
    )
    p.add_argument("--max-kills", type=int, default=None, help="stop killing after this many")
    p.add_argument("--kill-for", type=float, default=240.0, help="stop killing after this many seconds")
    p.add_argument("--drain", type=float, default=60.0, help="then wait this long for the rest")
    p.add_argument("--timeout", type=float, default=None, help="session timeout / lease (4 s ZK, 3 s SQL)")
    p.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help="claims without a consume before the board sets a job aside (the board's default: 3)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the logs under .bench/faults/ even if clean")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    ms = _pair(a.atom_ms, float)
    plan = SoakPlan(
        jobs=a.jobs,
        conductors=a.conductors,
        atoms=_pair(a.atoms, int),
        atom_seconds=(ms[0] / 1e3, ms[1] / 1e3),
        kill_every=_pair(a.kill_every, float),
        min_age=a.min_age,
        max_kills=a.max_kills,
        kill_for=a.kill_for,
        drain=a.drain,
        seed=a.seed,
    )
    sigterm_as_interrupt()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    with Setting(a.board, "soak", a.timeout, a.max_attempts) as s:
        s.keep = a.keep
        progress(f"soak on {a.board} (timeout/lease {s.timeout:g}s), work dir {s.work}: {plan}")
        result = soak(s.board, s.board_url, s.persistence, s.work, plan, progress=progress)
        s.keep = s.keep or not result.ok
    print(f"soak on the {a.board} board, {time.monotonic() - started:.0f}s")
    for line in result.lines():
        print(line)
    if not result.ok:
        print(f"FAULTS: {', '.join(f'{k}={v}' for k, v in result.failures().items() if v)}; logs in {s.work}")
        return 1
    return 0


if __name__ == "__main__":
    run_script(main)
