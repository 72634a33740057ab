"""Freeze: conductor A is SIGSTOPped past its session timeout / lease, B takes its job, A gets SIGCONT.

    .venv/bin/python bench/faults_freeze.py                       # 20 trials on each board
    .venv/bin/python bench/faults_freeze.py --board sql --trials 5

A trial: one job of 6 atoms of 0.5 s (``tests.job_flows:logged``: each atom logs its start and end).
A claims it and is SIGSTOPped at a random point (5-98 %) of its second atom; B is started, and claims
the job once A's claim has run out; 0.25 s later A gets SIGCONT. Every committed write to the flow and
atom detail tables is recorded by a trigger with the writer's ``application_name`` (each conductor's
PGAPPNAME is its name), so a write from A is seen even if B overwrites it a moment later. Counted per trial:

- ``a_starts``: atoms A started after B claimed (two conductors running one job at once);
- ``stale``: writes of A to the job's flow or atom details committed after B's claim (from the trigger's
  record; a write a fence refused is never committed, so it is not counted);
- ``consumed``: times the job was consumed (more than 1: completed twice); ``lost``: the job is not
  consumed at the end, or its flow is not SUCCESS.

Prints a table and the totals; exit status 1 if any count is not 0, 2 if a trial could not run.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _faults import BOARDS, Setting, run_script, sigterm_as_interrupt

from tests.fault_fleet import Fleet
from tests.fault_ledger import read_events
from tests.fault_soak import FACTORY, remaining

FROZEN_IN = "atom-1"


@dataclass
class Trial:
    a_starts: int = 0
    stale: int = 0
    consumed: int = 0
    lost: int = 0
    flow_state: str = "?"
    frozen_at: float = 0.0
    """How far into its atom A was when stopped (a fraction of the atom's time)."""
    claim_wait_s: float = 0.0
    """From SIGSTOP to B's claim."""
    error: str = ""

    def faults(self) -> int:
        return self.a_starts + self.stale + max(0, self.consumed - 1) + self.lost


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)
    return found


def _started(log: Path, pid: int, atom: str) -> bool:
    return any(e.kind == "start" and e.pid == pid and e.atom == atom for e in read_events(log))


AUDIT = """
CREATE TABLE IF NOT EXISTS fault_writes (
    at double precision, app text, flow_uuid text, tbl text, name text, state text, results text);
CREATE OR REPLACE FUNCTION fault_note() RETURNS trigger AS $$ BEGIN
    INSERT INTO fault_writes VALUES (
        extract(epoch from clock_timestamp()), current_setting('application_name'),
        coalesce(to_jsonb(NEW)->>'parent_uuid', NEW.uuid), TG_TABLE_NAME, NEW.name, NEW.state,
        to_jsonb(NEW)->>'results');
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER fault_atoms AFTER INSERT OR UPDATE ON flowkit_atomdetails
    FOR EACH ROW EXECUTE FUNCTION fault_note();
CREATE OR REPLACE TRIGGER fault_flows AFTER INSERT OR UPDATE ON flowkit_flowdetails
    FOR EACH ROW EXECUTE FUNCTION fault_note();
"""


def install_audit(persistence: str) -> None:
    """Create flowkit's tables, then the trigger that records every write to flow and atom details."""
    import sqlalchemy as sa

    from flowkit.engines.persistence import backend_for

    backend = backend_for(persistence)
    with backend.get_connection() as conn:
        conn.upgrade()
    backend.close()
    engine = sa.create_engine(persistence)
    with engine.begin() as conn:
        conn.exec_driver_sql(AUDIT)
    engine.dispose()


def writes_after(persistence: str, flow_uuid: str, app: str, after: float) -> list[tuple[Any, ...]]:
    """(at, table, name, state) of ``app``'s committed writes to the flow after ``after``."""
    import sqlalchemy as sa

    engine = sa.create_engine(persistence)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT at, tbl, name, state FROM fault_writes WHERE flow_uuid = %s AND app = %s AND at > %s "
            "ORDER BY at",
            (flow_uuid, app, after),
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def flow_state(persistence: str, flow_uuid: str) -> str:
    from flowkit.engines.persistence import backend_for

    backend = backend_for(persistence)
    try:
        with backend.get_connection() as conn:
            return str(conn.get_flow_detail(flow_uuid).state)
    finally:
        backend.close()


def trial(s: Setting, index: int, atoms: int, atom_s: float, hold: float, rng: random.Random) -> Trial:
    work = s.work / f"trial-{index:02d}"
    work.mkdir()
    event_log, key = work / "events.log", f"f{index:02d}"
    store = {"job_key": key, "event_log": str(event_log)}
    job = s.board.post_flow(FACTORY, store=store, factory_kwargs={"delays": [atom_s] * atoms}, name=key)
    fleet = Fleet(work, s.board_url, s.persistence)
    result = Trial(frozen_at=round(rng.uniform(0.05, 0.98), 2))
    try:
        a = fleet.start("a")
        _until(lambda: _started(event_log, a.pid, FROZEN_IN), 30, f"A to start {FROZEN_IN}")
        time.sleep(atom_s * result.frozen_at)  # late in the atom: A has its next step to take on waking
        fleet.freeze("a")
        frozen_at = time.time()
        fleet.start("b", wait=False)
        claim_at = _until(
            lambda: fleet.logged_at("b", f"claimed job '{key}'"), 4 * s.timeout + 30, "B to claim the job"
        )
        result.claim_wait_s = claim_at - frozen_at
        time.sleep(hold)
        fleet.thaw("a")
        _until(lambda: key not in remaining(s.board), atoms * atom_s + 4 * s.timeout + 30, "the job to end")
        time.sleep(2.0)  # whatever A still does after the job was consumed
        stale = writes_after(s.persistence, job.flow_uuid or "", "conductor-a", claim_at)
        result.stale = len(stale)
        result.a_starts = sum(
            1 for e in read_events(event_log) if e.kind == "start" and e.pid == a.pid and e.at > claim_at
        )
        if stale:
            (work / "stale-writes").write_text("".join(f"{row}\n" for row in stale))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        s.keep = True
    finally:
        fleet.close()
    result.consumed = fleet.consumed_lines()[key]
    result.flow_state = flow_state(s.persistence, job.flow_uuid or "")
    result.lost = int(key in remaining(s.board) or result.flow_state != "SUCCESS")
    return result


def run_board(
    board: str, trials: int, atoms: int, atom_s: float, hold: float, timeout: float | None, seed: int | None
) -> tuple[int, int]:
    """Run the trials on one board, print the table; return the numbers of faults and of errors."""
    with Setting(board, "freeze", timeout) as s:
        install_audit(s.persistence)
        print(f"\n{board} board (session timeout / lease {s.timeout:g}s), {trials} trials; logs {s.work}")
        print(f"{'trial':>5} {'a_starts':>8} {'stale':>5} {'consumed':>8} {'lost':>4}  ", end="")
        print(f"{'flow':<9} {'frozen_at':>9} {'claim_s':>7}  error")
        results = []
        rng = random.Random(seed)
        for i in range(trials):
            r = trial(s, i, atoms, atom_s, hold, rng)
            results.append(r)
            print(
                f"{i:>5} {r.a_starts:>8} {r.stale:>5} {r.consumed:>8} {r.lost:>4}  {r.flow_state:<9} "
                f"{r.frozen_at:>9.2f} {r.claim_wait_s:>7.2f}  {r.error}",
                flush=True,
            )
        faults = sum(r.faults() for r in results)
        s.keep = s.keep or faults > 0
        twice = sum(1 for r in results if r.consumed > 1)
        print(
            f"total {board}: trials with A starting atoms after B's claim "
            f"{sum(1 for r in results if r.a_starts)} ({sum(r.a_starts for r in results)} atoms), "
            f"with stale writes accepted {sum(1 for r in results if r.stale)} "
            f"({sum(r.stale for r in results)} writes), completed twice {twice}, "
            f"lost {sum(r.lost for r in results)}, errors {sum(1 for r in results if r.error)}"
        )
    return faults, sum(1 for r in results if r.error)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--board", choices=(*BOARDS, "both"), default="both")
    p.add_argument("--trials", type=int, default=20, help="trials per board")
    p.add_argument("--atoms", type=int, default=6)
    p.add_argument("--atom-s", type=float, default=0.5, help="seconds each atom sleeps")
    p.add_argument("--hold", type=float, default=0.25, help="seconds between B's claim and A's SIGCONT")
    p.add_argument("--timeout", type=float, default=None, help="session timeout / lease (4 s ZK, 3 s SQL)")
    p.add_argument("--seed", type=int, default=None, help="for the points in the atom where A is stopped")
    a = p.parse_args(argv)
    sigterm_as_interrupt()
    boards = BOARDS if a.board == "both" else (a.board,)
    counts = [run_board(b, a.trials, a.atoms, a.atom_s, a.hold, a.timeout, a.seed) for b in boards]
    faults, errors = (sum(c[i] for c in counts) for i in (0, 1))
    print(f"\nFAULTS: {faults}" if faults else "\nno faults")
    return 2 if errors else 1 if faults else 0


if __name__ == "__main__":
    run_script(main)
