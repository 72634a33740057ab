"""flowkit's demo: provision a cluster, fail and revert, then crash mid-flow and resume.

Run it with ``python -m flowkit.demo`` (or ``bash scripts/demo.sh``). The flow,
``create-cluster``, creates three servers at the same time (an unordered flow on the
parallel engine's threads), waits for each to come up, then configures the cluster.
Every state change is saved to a SQLite file (the embedded default) as it happens and
printed live.

- Run 1: the configure step fails ("quota exceeded"), so every server created is
  reverted (deleted) in reverse dependency order.
- Run 2: the flow runs in a child process that is killed with SIGKILL half way. This
  process then rebuilds the flow from its saved factory and resumes it from the
  database: servers already created are not created again, the atoms that were
  running when the process died run again (at-least-once), and the create task uses
  its atom's stable uuid as an idempotency key, so a rerun never makes a second server.
- Run 3: the flow is posted as a job to a job board kept in SQLite; a conductor daemon
  claims it and is killed half way; a second conductor claims the job when the first
  one's lease runs out, resumes the flow from the database and consumes the job.
- Run 4: a flow that waits (``approved_cluster``: a 3-second ``Sleep``, then a
  ``WaitForEvent`` for its approval) runs under a conductor that runs one job at a time.
  While it waits, its job is parked on the board (state WAITING) and the conductor runs
  another job; it is claimed again at the end of the sleep, parks on its approval, and
  the demo sends the event through the board (``board.send_event``).

The cloud is simulated in a JSON file (:class:`FakeCloud`) so that both processes see the
same servers. One module per part: ``flow`` (the flow and its tasks), ``cloud``, ``workspace``
(the database, run 1), ``crash`` (run 2), ``conductors`` (run 3), ``waits`` (run 4) and ``main``
(the command).
The flow is also a factory the CLI can use::

    flowkit run flowkit.demo:create_cluster --engine parallel --store \
        '{"cluster_name": "c1", "cloud": "/tmp/cloud.json", "fail_configure": true}'
    flowkit graph flowkit.demo:create_cluster --format mermaid
"""

from flowkit.demo.cloud import FakeCloud
from flowkit.demo.conductors import ConductorRun, conductors
from flowkit.demo.crash import crash_and_resume
from flowkit.demo.flow import (
    SERVERS,
    ConfigureCluster,
    CreateServer,
    QuotaExceeded,
    WaitForServer,
    create_cluster,
)
from flowkit.demo.main import check, main
from flowkit.demo.waits import WaitRun, approved_cluster, waiting
from flowkit.demo.workspace import Demo, DemoRun, print_summary, run_demo

__all__ = [  # noqa: RUF022 - grouped by concept, not sorted
    # the flow
    "SERVERS",
    "create_cluster",
    "CreateServer",
    "WaitForServer",
    "ConfigureCluster",
    "QuotaExceeded",
    "FakeCloud",
    # the runs
    "Demo",
    "DemoRun",
    "run_demo",
    "print_summary",
    "crash_and_resume",
    "ConductorRun",
    "conductors",
    "approved_cluster",
    "WaitRun",
    "waiting",
    # the command
    "check",
    "main",
]
