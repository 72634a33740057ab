"""The demo flow, ``create-cluster``, and its tasks.

Three servers are created at the same time (an unordered flow), each waited for, then the
cluster is configured; configuring fails with :class:`QuotaExceeded` while the store's
``fail_configure`` is set. ``create_cluster`` is the factory the CLI, persistence (to resume)
and the job board name: ``flowkit.demo:create_cluster``.
"""

from __future__ import annotations

import time
from typing import Any

from flowkit import context
from flowkit.demo.cloud import FakeCloud
from flowkit.flow import Flow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.patterns.unordered_flow import UnorderedFlow
from flowkit.task import Task

SERVERS = 3


class QuotaExceeded(Exception):
    """The simulated cloud refuses to allocate what the cluster needs."""


class CreateServer(Task):
    """Create one server; revert deletes it."""

    def execute(self, cluster_name: str, index: int, cloud: str, pace: float = 1.0) -> str:
        time.sleep(pace * (0.10 + 0.05 * index))
        # The atom's uuid is stable across a crash and a resume: the cloud creates one server per key.
        return FakeCloud(cloud).create(f"{cluster_name}-{index}", context.current_atom_uuid())

    def revert(self, result: Any, index: int, cloud: str, pace: float = 1.0, **kwargs: Any) -> None:
        if isinstance(result, str):  # a Failure when execute itself failed: nothing was created
            # Staggered like the creates, mirrored, so the deletions show in reverse creation order.
            time.sleep(pace * 0.05 * max(1, 5 - index))
            FakeCloud(cloud).delete(result)


class WaitForServer(Task):
    """Poll until the server is up, reporting progress."""

    def execute(self, server_id: str, cloud: str, pace: float = 1.0) -> None:
        for step in range(1, 4):
            time.sleep(pace * 0.08)
            self.update_progress(step / 3)
        FakeCloud(cloud).activate(server_id)


class ConfigureCluster(Task):
    """Join the servers into a cluster; fails with QuotaExceeded while ``fail_configure`` is set."""

    def execute(
        self, cluster_name: str, fail_configure: bool = False, pace: float = 1.0, **servers: str
    ) -> str:
        time.sleep(pace * 0.10)
        if fail_configure:
            raise QuotaExceeded(
                f"quota exceeded: no floating IP left for cluster {cluster_name!r} "
                f"({len(servers)} servers ready)"
            )
        return f"https://{cluster_name}.cluster.example:6443"


def create_cluster(servers: int = SERVERS) -> Flow:
    """The demo flow: ``servers`` x (create -> wait) at the same time, then configure."""
    names = [f"server_{n}" for n in range(1, servers + 1)]
    return LinearFlow("create-cluster").add(
        UnorderedFlow("servers").add(
            *(
                LinearFlow(f"server-{n}").add(
                    CreateServer(f"create-server-{n}", provides=f"server_{n}", inject={"index": n}),
                    WaitForServer(f"wait-server-{n}", rebind={"server_id": f"server_{n}"}),
                )
                for n in range(1, servers + 1)
            )
        ),
        ConfigureCluster("configure-cluster", requires=names, provides="endpoint"),
    )
