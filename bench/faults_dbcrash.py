"""Crash PostgreSQL in the middle of a flow, N times, and count what the database got wrong.

    .venv/bin/python bench/faults_dbcrash.py [--runs 5] [--tasks 100] [--crash-at 40] [--down 5]
                                             [--mode forward|revert|end] [--wal-writer-delay 200ms]

Each run makes its own PostgreSQL cluster (``tests/pg_server.py``: initdb + pg_ctl on a free port; the
shared server is never touched), runs a flow of ``--tasks`` tasks of ~3 ms in this process with the
default durability, and stops the server with ``pg_ctl stop -m immediate`` for ``--down`` seconds:
``forward`` from inside task ``--crash-at``, ``revert`` from inside the revert of the ``--crash-at``-th
task reverted (the last task fails), ``end`` right after the last atom's SUCCESS is saved. After
``run()`` it compares every saved atom with the engine's own final state and prints, per run:

- lost: atoms saved PENDING although they ran (every write of theirs lost);
- stale: atoms saved in an earlier state than the engine's (a later write lost);
- inconsistent: atoms saved in the engine's state but with other data (a result that is not theirs);
- the saved flow state, and whether that record is one the engine could have left (ok / BAD).

Figures are printed, never asserted (the fault tests assert: tests/test_persistence_dbcrash.py).
The PostgreSQL defaults are kept unless ``--wal-writer-delay`` is given.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO_ROOT))  # tests.pg_server; flowkit itself comes from the environment

from flowkit import LinearFlow, engines  # noqa: E402
from flowkit.persistence import backends  # noqa: E402
from flowkit.persistence.backoff import Backoff  # noqa: E402
from flowkit.persistence.models import FlowDetail  # noqa: E402
from flowkit.states import AtomState, FlowState  # noqa: E402
from tests.pg_server import PgServer, why_not_available  # noqa: E402
from tests.support.crash_steps import Boom, Step, once  # noqa: E402

S = AtomState
# how far along an atom is, per flow direction: a smaller rank saved than the engine's is a lost write
_FORWARD_RANK = {S.PENDING: 0, S.RUNNING: 1, S.SUCCESS: 2}
_REVERT_RANK = {S.PENDING: 0, S.RUNNING: 1, S.SUCCESS: 2, S.FAILURE: 2, S.REVERTING: 3, S.REVERTED: 4}


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    settings = {"wal_writer_delay": args.wal_writer_delay} if args.wal_writer_delay else {}
    with PgServer(settings) as pg:
        with backends.fetch(pg.url) as setup, setup.get_connection() as conn:
            conn.upgrade()
        crash = once(lambda: pg.crash_for(args.down))
        n, at, mode = args.tasks, args.crash_at, args.mode
        steps = []
        for i in range(n):
            hook_exec = crash if mode == "forward" and i == at else None
            hook_revert = crash if mode == "revert" and i == n - 1 - at else None
            steps.append(Step(f"t{i:03d}", hook_exec, hook_revert, fail=mode == "revert" and i == n - 1))
        fd = FlowDetail(f"dbcrash-{mode}")
        backend = backends.fetch(pg.url, backoff=Backoff(timeout=60))
        engine = engines.load(LinearFlow(fd.name).add(*steps), backend=backend, flow_detail=fd)
        if mode == "end":
            last = f"t{n - 1:03d}"
            engine.atom_notifier.register(
                S.SUCCESS, lambda state, details: crash() if details["atom_name"] == last else None
            )
        started = time.monotonic()
        try:
            engine.run()
        except Boom:
            pass
        finally:
            pg.wait_restarted()
        took = time.monotonic() - started
        backend.close()
        direct = backends.fetch(pg.url)
        with direct.get_connection() as conn:
            saved = conn.get_flow_detail(fd.uuid)
        direct.close()
    st = engine.storage
    rank = _REVERT_RANK if mode == "revert" else _FORWARD_RANK
    lost = stale = inconsistent = 0
    for i, name in enumerate(st.compiled.names):
        ad = saved.find_by_name(name)
        if ad is None:
            continue
        want = st.states[i]
        if ad.state is not want:
            if ad.state is S.PENDING:
                lost += 1
            elif rank.get(ad.state, 99) < rank.get(want, 0):
                stale += 1
            else:
                inconsistent += 1
        elif want is S.SUCCESS and ad.results != st.results[i]:
            inconsistent += 1
    expected = FlowState.REVERTED if mode == "revert" else FlowState.SUCCESS
    ok = saved.state is expected and lost == stale == inconsistent == 0
    return {
        "lost": lost,
        "stale": stale,
        "inconsistent": inconsistent,
        "flow": saved.state.value,
        "ok": ok,
        "seconds": took,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--crash-at", type=int, default=40)
    p.add_argument("--down", type=float, default=5.0, help="seconds the server stays down")
    p.add_argument("--mode", choices=("forward", "revert", "end"), default="forward")
    p.add_argument("--wal-writer-delay", default="", help="e.g. 2s (default: PostgreSQL's own, 200ms)")
    args = p.parse_args(argv)
    reason = why_not_available()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)  # the engine's reconnect warnings are expected here
    print(f"{args.mode}: {args.tasks} tasks, crash at {args.crash_at}, server down {args.down:g} s")
    bad = 0
    for k in range(1, args.runs + 1):
        r = one_run(args)
        bad += not r["ok"]
        print(
            f"run {k}: lost {r['lost']}, stale {r['stale']}, inconsistent {r['inconsistent']}; "
            f"flow saved {r['flow']}: {'ok' if r['ok'] else 'BAD'} ({r['seconds']:.1f} s)",
            flush=True,
        )
    print(f"{bad} of {args.runs} runs saved a state the engine could not have been in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
