"""REST routes and pages of ``flowkit serve``: flows: list with filters and paging, one flow with its graph, live updates (console)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
