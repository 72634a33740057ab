"""The names of the ZooKeeper board's job nodes: ``job-`` and the ten-digit sequence number ZooKeeper
gave the post, the same name under ``jobs/``, ``claims/``, ``waiting/`` and every other directory.

Apart because every part of the board names nodes, and the copy and its two ways of following the
tree (``_zookeeper_copy_events``, ``_zookeeper_listings``) tell job nodes from stray names by it.
"""

from __future__ import annotations

import re

from flowkit.jobboard.job import Job

JOB_NODE = re.compile(r"^job-(\d{10})$")
"""A job node's name (anything else in the board's directories is skipped, with a warning)."""


def node_of(job: Job) -> str:
    """The job's node name."""
    return f"job-{job.sequence:010d}"
