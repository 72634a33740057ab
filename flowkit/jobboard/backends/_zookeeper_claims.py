"""The ZooKeeper board's claim nodes: what one holds, who it names, how a transaction on it failed,
and how a claimant takes back one it may have left behind.

Apart from the board because these are the facts about a single claim node, the same for claiming,
consuming, abandoning and moving a job; the board decides when to claim and what each move commits.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any


def claim_data(who: str) -> bytes:
    """What a claim node holds: its owner's name and when it claimed."""
    return json.dumps({"owner": who, "claimed_on": time.time()}).encode()


def owner_name(data: bytes) -> str | None:
    """The owner a claim node names, or None when its data is not a claim's."""
    try:
        owner = json.loads(data.decode("utf-8")).get("owner")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def release(client: Any, claim: str, session: int, timeout: float) -> None:
    """Delete ``claim`` if ``session`` still holds it; if that session dies first, ZooKeeper does.

    Retried for up to ``timeout`` seconds (the session timeout: past it the session is dead anyway).
    """
    from kazoo.exceptions import KazooException, NoNodeError
    from kazoo.retry import KazooRetry

    def delete_if_ours() -> None:
        _, stat = client.get(claim)
        if stat.ephemeralOwner == session:
            client.delete(claim, version=stat.version)

    with contextlib.suppress(NoNodeError, KazooException):
        KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=timeout)(delete_if_ours)


def first_failure(results: list[Any]) -> Exception | None:
    """The exception that failed a kazoo transaction (the others are RolledBackError), or None."""
    from kazoo.exceptions import RolledBackError

    failures = [r for r in results if isinstance(r, Exception)]
    real = [f for f in failures if not isinstance(f, RolledBackError)]
    found = real or failures
    return found[0] if found else None
