"""The fault tally on hand-made event logs: each kind of fault is counted, and a kill explains only what
it can (unit tests of our own counting; the soaks that use it run real conductors)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.fault_ledger import Event, append_event, read_events, tally


def _events(*rows: tuple[str, str, str, int, float]) -> list[Event]:
    return [Event(*row) for row in rows]


def _one_job(*rows: tuple[str, str, int, float], kills: dict[int, float] | None = None, **kw: object):
    events = _events(*((kind, "j", atom, pid, at) for kind, atom, pid, at in rows))
    args = {"remaining": (), "consumed_lines": Counter({"j": 1}), "kills": kills or {}} | kw
    return tally(atoms={"j": ["a0", "a1"]}, events=events, **args)  # type: ignore[arg-type]


def _whole_job(pid: int, at: float) -> tuple[tuple[str, str, int, float], ...]:
    """Process ``pid`` runs the whole job from ``at`` (once, or again after a takeover)."""
    return (
        ("start", "a0", pid, at),
        ("end", "a0", pid, at + 0.1),
        ("start", "a1", pid, at + 0.2),
        ("end", "a1", pid, at + 0.3),
    )


def test_a_clean_run_counts_nothing() -> None:
    t = _one_job(*_whole_job(1, 1.0))
    assert t.ok and (t.posted, t.consumed, t.doubled_atoms) == (1, 1, 0)


def test_a_rerun_after_a_kill_mid_atom_is_explained() -> None:
    t = _one_job(("start", "a0", 1, 1.0), *_whole_job(2, 6.0), kills={1: 1.05})
    assert t.ok and (t.doubled_atoms, t.explained_mid_atom, t.kills) == (1, 1, 1)


def test_a_kill_just_after_the_end_is_explained_apart() -> None:
    t = _one_job(("start", "a0", 1, 1.0), ("end", "a0", 1, 1.1), *_whole_job(2, 6.0), kills={1: 1.101})
    assert t.ok and (t.explained_mid_atom, t.explained_after_end) == (0, 1)


def test_a_rerun_without_a_kill_or_after_the_next_atom_is_unexplained() -> None:
    no_kill = _one_job(("start", "a0", 1, 1.0), ("end", "a0", 1, 1.1), *_whole_job(2, 6.0))
    assert len(no_kill.unexplained) == 1 and not no_kill.ok
    saved_then_killed = _one_job(
        ("start", "a0", 1, 1.0),
        ("end", "a0", 1, 1.1),
        ("start", "a1", 1, 1.2),  # a0's result was saved before a1 started: a rerun of a0 is a fault
        *_whole_job(2, 6.0),
        kills={1: 1.25},
    )
    assert saved_then_killed.failures()["unexplained doubles"] == 1
    assert saved_then_killed.explained_mid_atom == 1  # a1, which it was running


def test_a_rerun_that_started_before_the_kill_is_unexplained_and_concurrent() -> None:
    t = _one_job(("start", "a0", 1, 1.0), *_whole_job(2, 1.5), kills={1: 2.0})
    assert t.failures()["unexplained doubles"] == 1 and t.concurrent == ["j"]


def test_lost_completed_twice_and_unfinished_jobs() -> None:
    events = _events(("start", "b", "a0", 1, 1.0), ("end", "b", "a0", 1, 1.1), ("start", "c", "a0", 1, 2.0))
    t = tally(
        atoms={"a": ["a0"], "b": ["a0"], "c": ["a0"], "d": ["a0"], "e": ["a0"]},
        remaining={"a"},
        consumed_lines=Counter({"b": 2, "c": 1}),
        events=events,
        kills={},
        failed_flows={"d"},
        set_aside={"e": "claimed 3 times without being consumed"},
    )
    assert (t.posted, t.consumed) == (5, 3)
    assert (t.lost, t.completed_twice, t.unfinished) == (["a", "e"], ["b"], ["c", "d"])
    assert "  lost: e: set aside: claimed 3 times without being consumed" in t.lines()
    assert t.failures() == {
        "lost": 2,
        "completed twice": 1,
        "unfinished": 2,
        "unexplained doubles": 0,
        "concurrent": 0,
    }


def test_the_event_log_round_trips_and_skips_a_torn_line(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    append_event(log, "start", "j", "a0")
    with open(log, "a") as f:
        f.write("end j a0 12")  # cut short by a SIGKILL
    [event] = read_events(log)
    assert (event.kind, event.job, event.atom) == ("start", "j", "a0")
