"""REST routes and pages of ``flowkit serve``: jobs, operator verbs, events, fleet."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
