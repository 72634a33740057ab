"""REST routes and pages of ``flowkit serve``: the web console's pages and static files."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
