"""``python -m flowkit.demo``: the four runs, then a verdict on whether each behaved as designed."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from typing import TextIO

from flowkit.demo.conductors import ConductorRun, conductors
from flowkit.demo.crash import crash_and_resume, run_child
from flowkit.demo.flow import SERVERS
from flowkit.demo.waits import WaitRun, waiting
from flowkit.demo.waits import problems as wait_problems
from flowkit.demo.workspace import Demo, DemoRun
from flowkit.states import AtomState, FlowState

DESCRIPTION = "flowkit's demo: provision a cluster, fail and revert, then crash mid-flow and resume."


def check(
    first: DemoRun,
    second: DemoRun,
    saved: dict[str, str],
    third: ConductorRun | None = None,
    servers: int = SERVERS,
    fourth: WaitRun | None = None,
) -> list[str]:
    """What did not go as designed (an empty list when the demo behaved)."""
    problems = []
    if first.state is not FlowState.REVERTED:
        problems.append(f"run 1 should end REVERTED, ended {first.state.value}")
    not_reverted = [n for n, s in first.atom_states.items() if s is not AtomState.REVERTED]
    if not_reverted:
        problems.append(f"run 1 left atoms not reverted: {', '.join(not_reverted)}")
    if first.servers_left or len(first.deleted) != servers:
        problems.append(f"run 1 should delete all {servers} servers, left {first.servers_left}")
    if saved.get("configure-cluster") == "SUCCESS":
        problems.append("run 2 was killed too late: the flow had already finished")
    if second.state is not FlowState.SUCCESS:
        problems.append(f"run 2 should end SUCCESS after the resume, ended {second.state.value}")
    if len(second.servers_left) != servers or len(second.created) != servers:
        problems.append(
            f"run 2 should create each of {servers} servers once, created {second.created}, "
            f"left {second.servers_left}"
        )
    rerun = [n for n, s in saved.items() if s == "SUCCESS" and n in second.timings]
    if rerun:
        problems.append(f"the resume executed atoms that had already succeeded: {', '.join(rerun)}")
    if third is not None:
        if third.job_state != "COMPLETE" or third.flow_state != "SUCCESS":
            problems.append(
                f"run 3 should consume the job after SUCCESS, got {third.job_state}/{third.flow_state}"
            )
        if third.second_owner in (None, third.first_owner):
            problems.append(f"run 3: another conductor should take the job over, got {third.second_owner}")
        if len(third.created) != servers or len(third.servers_left) != servers:
            problems.append(f"run 3 should create each server once, created {third.created}")
    if fourth is not None:
        problems.extend(wait_problems(fourth))
    return problems


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Both runs, then a verdict; 0 when the demo behaved as designed."""
    parser = argparse.ArgumentParser(prog="python -m flowkit.demo", description=DESCRIPTION)
    parser.add_argument("--pace", type=float, default=1.0, help="scale the simulated work (0.2 is quick)")
    parser.add_argument("--workdir", help="where the SQLite database and the cloud go (default: a temp dir)")
    parser.add_argument("--child", metavar="FLOW_DETAIL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.workdir)
    out = out if out is not None else sys.stdout
    demo = Demo(args.workdir or tempfile.mkdtemp(prefix="flowkit-demo-"), max(args.pace, 0.2))
    out.write(f"state is saved in {demo.db_url} (inspect it: flowkit show {demo.db_url})\n\n")
    out.write(
        "== run 1: create 3 servers in parallel, wait for them, configure the cluster.\n"
        "   configure-cluster fails (quota exceeded): every atom that ran is reverted.\n"
    )
    demo.cloud.reset()
    first = demo.run(out, demo.load(demo.new_flow_detail(fail=True)))
    out.write("\n== run 2: the same flow, in a child process that is killed (SIGKILL) half way\n")
    out.flush()
    saved, second = crash_and_resume(out, demo)
    out.write(
        "\n== run 3: the same as a job: conductor A (a daemon process) claims it from a SQLite job\n"
        "   board and is killed half way; conductor B claims it when A's lease runs out\n"
    )
    out.flush()
    third = conductors(out, demo)
    out.write(
        "\n== run 4: a flow that waits: a 3-second cool-down (Sleep), then an operator's approval\n"
        "   (WaitForEvent). One conductor (--max-jobs 1) parks it while it waits and runs other work\n"
    )
    out.flush()
    fourth = waiting(out, demo)
    problems = check(first, second, saved, third, fourth=fourth)
    if problems:
        out.write("\ndemo: did NOT behave as designed:\n" + "".join(f"  - {p}\n" for p in problems))
        return 1
    out.write(
        "\ndemo: run 1 was reverted cleanly; run 2 survived a SIGKILL: the resume skipped what had\n"
        "succeeded, reran what was running, and each server was created exactly once; in run 3 a\n"
        "second conductor finished the job of a killed one; in run 4 a waiting flow held no conductor\n"
        "thread: it was parked on the board until its time, and until the approval the demo sent.\n"
    )
    return 0
