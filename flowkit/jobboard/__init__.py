"""Job boards: where work is posted for conductors to claim, run and consume.

``from flowkit.jobboard import backends as boards; board = boards.fetch(name, url, persistence=...)``.
"""

from flowkit.exceptions import MalformedJobError
from flowkit.jobboard.base import CancelListener, ClaimEvent, ClaimListener, JobBoard
from flowkit.jobboard.job import Job, JobPriority
from flowkit.states import JobState

__all__ = [
    # boards
    "CancelListener",
    "ClaimEvent",
    "ClaimListener",
    # jobs
    "Job",
    "JobBoard",
    "JobPriority",
    "JobState",
    "MalformedJobError",
]
