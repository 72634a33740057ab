"""What one ``flowkit serve`` process serves: which persistence, which board, and who may change things."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """The settings of one server; the CLI builds it from flags and ``FLOWKIT_*`` variables."""

    persistence_url: str
    board_url: str | None = None
    board_name: str = "flowkit"
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8642
