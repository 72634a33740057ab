"""Run 2: the flow runs in a child process that is killed with SIGKILL half way, then resumes here.

The child is ``python -m flowkit.demo --child FLOW_DETAIL``; this process watches the database and
kills it once one server is up, then rebuilds the flow from its saved factory and resumes it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import TextIO

from flowkit.demo.workspace import Demo, DemoRun
from flowkit.listeners import PrintingListener


def crash_and_resume(out: TextIO, demo: Demo, timeout: float = 30.0) -> tuple[dict[str, str], DemoRun]:
    """Run the flow in a child process, SIGKILL it half way, resume it here from the database."""
    demo.cloud.reset()
    uuid = demo.new_flow_detail(fail=False)
    child = subprocess.Popen(
        [sys.executable, "-m", "flowkit.demo", "--child", uuid, "--workdir", str(demo.workdir)],
        stdout=out if _has_fileno(out) else subprocess.DEVNULL,
    )
    saved: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:  # kill as soon as one server is up: others are still being created or waited on
        while time.monotonic() < deadline and child.poll() is None:
            saved = demo.saved_states(uuid)
            if any(n.startswith("wait-server") and s == "SUCCESS" for n, s in saved.items()):
                break
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    saved = demo.saved_states(uuid)
    out.write(f"\n   process {child.pid} killed with SIGKILL; the database says:\n")
    for name, state in saved.items():
        out.write(f"     {name:<20} {state}\n")
    out.write("\n== resuming in this process from the database (flowkit.demo:create_cluster rebuilt)\n")
    out.flush()
    return saved, demo.run(out, demo.load(uuid))


def _has_fileno(out: TextIO) -> bool:
    try:
        out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def run_child(flow_detail_uuid: str, workdir: str) -> int:
    """The process that gets killed: runs the saved flow detail, printing as it goes."""
    demo = Demo(workdir)
    engine = demo.load(flow_detail_uuid)
    with PrintingListener(engine, stream=sys.stdout, timestamps="relative"):
        sys.stdout.flush()
        engine.run()
    return 0
