"""The SQL backend's statements that go through SQLAlchemy: the reads and the fence.

Why built once with bound parameters: SQLAlchemy builds, and keys for its compiled cache, a statement
constructed anew at every call, which cost a conductor more CPU per job (restoring a flow: the fence,
the flow and atom reads) than the database spent. The row updates and upserts (an atom transition,
a new flow's rows) are prepared on the DB-API cursor instead: see :mod:`._prepared`.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from flowkit.persistence.backends._tables import ORDER, TABLES
from flowkit.persistence.rows import ATOMS, FLOWS, ORDER_BY, Row

IN_CHUNK = 500  # values per IN (...) list: far below every database's bound-parameter limit


@functools.cache
def select_statement(table: str, column: str | None) -> sa.Select[Any]:
    """All rows of ``table`` in order, or those whose ``column`` is in the parameter ``values``."""
    t = TABLES[table]
    query = sa.select(t).order_by(*ORDER[table])
    if column is None:
        return query
    return query.where(t.c[column].in_(sa.bindparam("values", expanding=True)))


def _fence_statements() -> tuple[sa.Update, sa.Update, sa.Select[Any]]:
    """raise_fence's statements: the flow row's fence raised to ``token``, its atoms', and the read."""
    flows, atoms = TABLES[FLOWS], TABLES[ATOMS]
    # (named apart from the columns: SQLAlchemy keeps bound parameters named like a column for its SET)
    uuid, token = sa.bindparam("b_uuid", type_=sa.String), sa.bindparam("b_token", type_=sa.BigInteger)
    return (
        sa.update(flows).where(flows.c.uuid == uuid, flows.c.fence <= token).values(fence=token),
        sa.update(atoms).where(atoms.c.parent_uuid == uuid).values(fence=token),
        sa.select(flows.c.fence).where(flows.c.uuid == uuid),
    )


FENCE = _fence_statements()
"""(raise the flow's fence, raise its atoms', read the flow's fence), parameters ``b_uuid``, ``b_token``."""
assert ORDER_BY[ATOMS] == ("position", "name")  # atom_order's, in Python


def atom_order(row: Row) -> tuple[bool, int, str]:
    """An atom row's place in the atoms' order (``ORDER BY position, name``; PostgreSQL: NULLs last)."""
    position = row["position"]
    return position is None, position or 0, row["name"]
