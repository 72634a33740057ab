"""The SQL board's fleet: one row of ``flowkit_fleet`` per member, upserted by its heartbeat."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from flowkit.jobboard.backends import _sql_schema as schema
from flowkit.jobboard.fleet import FORGET_AFTER, Member

if TYPE_CHECKING:
    from flowkit.jobboard.backends.sql import SQLJobBoard

F = schema.fleet


def announce(board: SQLJobBoard, member: Member) -> None:
    record = json.dumps(member.to_record())
    key = sa.and_(F.c.board == board.name, F.c.name == member.name)
    with board._tx(f"announce {member.name!r}") as conn:
        updated = conn.execute(F.update().where(key).values(heartbeat=member.heartbeat, record=record))
        if updated.rowcount == 0:
            conn.execute(
                F.insert().values(
                    board=board.name, name=member.name, heartbeat=member.heartbeat, record=record
                )
            )
        # members silent for long are forgotten (their interval is at most FORGET_AFTER / MISSED_BEATS)
        conn.execute(F.delete().where(F.c.board == board.name, F.c.heartbeat < time.time() - FORGET_AFTER))


def members(board: SQLJobBoard) -> list[Member]:
    with board._tx("list the fleet") as conn:
        rows = conn.execute(sa.select(F.c.record).where(F.c.board == board.name).order_by(F.c.name)).all()
    out = []
    for row in rows:
        try:
            out.append(Member.from_record(json.loads(row.record)))
        except (ValueError, KeyError, TypeError):
            continue  # not a record this version reads: not listed
    return out


__all__ = ["announce", "members"]
