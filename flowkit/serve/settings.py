"""What one ``flowkit serve`` process serves: which persistence, which board, and who may change things."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from flowkit.exceptions import FlowkitError

__all__ = ["ServeSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """The settings of one server; the CLI builds it from flags and ``FLOWKIT_*`` variables."""

    persistence_url: str
    board_url: str | None = None
    """The job board; None: the persistence database when it is SQL (the embedded default)."""
    board_name: str = "flowkit"
    token: str | None = None
    """When set, every ``/api`` request must carry ``Authorization: Bearer TOKEN``."""
    host: str = "127.0.0.1"
    port: int = 8642
    allow: tuple[str, ...] | None = None
    """Module prefixes a job's factory must be under to be posted (the conductors' ``--allow``)."""
    transport: str | None = None
    """A broker URL: the fleet then lists the workers on :attr:`exchange` too."""
    exchange: str = "flowkit"
    health_timeout: float = 3.0
    """Seconds ``/healthz`` gives the board and the database to answer."""

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise FlowkitError(
                f"refusing to serve on {self.host!r} without a token: set --token (or FLOWKIT_TOKEN) "
                "to bind an address other machines can reach"
            )

    @property
    def board(self) -> str:
        """The board URL in use (the persistence URL when no board was given)."""
        return self.board_url or self.persistence_url
