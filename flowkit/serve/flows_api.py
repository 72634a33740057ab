"""REST routes of ``flowkit serve`` for flows: lists with filters and paging, one flow with its graph."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
